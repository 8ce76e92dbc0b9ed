package webhook

import (
	"bytes"
	"fmt"

	"github.com/storyflow/storyflow/internal/jsontext"
)

// encodeChatbot writes the body of a chatbot-format call (SPEC §3):
// {chatId, messageId, userId, externalId, node, userAttributes, attributes}.
// It writes JSON directly; values of types it does not know go through
// encoding/json.
func encodeChatbot(buf *bytes.Buffer, conn *Connection, r *Request) error {
	b := buf.AvailableBuffer()
	b = append(b, `{"chatId":`...)
	b = jsontext.AppendString(b, r.ChatID)
	b = append(b, `,"messageId":`...)
	b = jsontext.AppendString(b, r.MessageID)
	b = append(b, `,"userId":`...)
	b = jsontext.AppendString(b, r.UserID)
	b = append(b, `,"externalId":`...)
	b = jsontext.AppendString(b, r.ExternalID)
	b = append(b, `,"node":{"id":`...)
	b = jsontext.AppendString(b, r.NodeID)
	b = append(b, `,"name":`...)
	b = jsontext.AppendString(b, r.NodeName)
	b = append(b, `,"type":"WEBHOOK","webhookId":`...)
	b = jsontext.AppendString(b, conn.ID)
	b = append(b, `,"webhookName":`...)
	b = jsontext.AppendString(b, conn.Name)
	b = append(b, `},"userAttributes":`...)
	var err error
	if b, err = jsontext.AppendObject(b, r.UserAttributes); err != nil {
		return fmt.Errorf("userAttributes: %w", err)
	}
	b = append(b, `,"attributes":`...)
	if b, err = jsontext.AppendObject(b, r.Attributes); err != nil {
		return fmt.Errorf("attributes: %w", err)
	}
	b = append(b, '}')
	buf.Write(b)
	return nil
}
