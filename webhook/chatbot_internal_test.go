package webhook

import (
	"bytes"
	"testing"
)

func TestEncodeChatbot(t *testing.T) {
	conn := &Connection{ID: "w1", Name: "crm <&>"}
	tests := []struct {
		r    Request
		want string
	}{
		{Request{ChatID: "c1", MessageID: "m1", UserID: "u1", NodeID: "call", NodeName: "Call"},
			`{"chatId":"c1","messageId":"m1","userId":"u1","externalId":"","node":{"id":"call","name":"Call","type":"WEBHOOK","webhookId":"w1","webhookName":"crm <&>"},"userAttributes":{},"attributes":{}}`},
		{Request{ChatID: "c1", UserAttributes: map[string]any{"b": 1.5, "a": "x"}, Attributes: map[string]any{"n": nil}},
			`{"chatId":"c1","messageId":"","userId":"","externalId":"","node":{"id":"","name":"","type":"WEBHOOK","webhookId":"w1","webhookName":"crm <&>"},"userAttributes":{"a":"x","b":1.5},"attributes":{"n":null}}`},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := encodeChatbot(&buf, conn, &tt.r); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("got  %s\nwant %s", buf.String(), tt.want)
		}
	}
}
