package webhook_test

import (
	"bytes"
	"testing"

	"github.com/storyflow/storyflow/webhook"
)

const benchAnswer = `{"responses":[{"type":"text","message":"Welcome back, Ann! You are on the Pro plan."}],` +
	`"attributes":{"customer":"yes","plan":"pro","customer_name":"Ann","open_orders":2,"lookup_error":null}}`

func BenchmarkDecodeAnswer(b *testing.B) {
	body := []byte(benchAnswer)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := webhook.DecodeAnswer(body, gotoOK); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 300)
	b.ReportAllocs()
	for b.Loop() {
		webhook.Sign("s3cret", "1767225600", body)
	}
}
