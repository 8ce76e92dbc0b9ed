package webhook

import (
	"bytes"
)

// chatbotRequest is the body of a chatbot-format call (SPEC §3).
type chatbotRequest struct {
	ChatID         string         `json:"chatId"`
	MessageID      string         `json:"messageId"`
	UserID         string         `json:"userId"`
	ExternalID     string         `json:"externalId"`
	Node           chatbotNode    `json:"node"`
	UserAttributes map[string]any `json:"userAttributes"`
	Attributes     map[string]any `json:"attributes"`
}

type chatbotNode struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	WebhookID   string `json:"webhookId"`
	WebhookName string `json:"webhookName"`
}

// encodeChatbot writes the body of a chatbot-format call: {chatId,
// messageId, userId, externalId, node, userAttributes, attributes}; the
// attributes are {} when there are none.
func encodeChatbot(buf *bytes.Buffer, conn *Connection, r *Request) error {
	return encodeJSON(buf, &chatbotRequest{
		ChatID: r.ChatID, MessageID: r.MessageID, UserID: r.UserID, ExternalID: r.ExternalID,
		Node:           chatbotNode{ID: r.NodeID, Name: r.NodeName, Type: "WEBHOOK", WebhookID: conn.ID, WebhookName: conn.Name},
		UserAttributes: orEmpty(r.UserAttributes),
		Attributes:     orEmpty(r.Attributes),
	})
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
