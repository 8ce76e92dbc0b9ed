package webhook

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAdvice(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		headers  map[string]string
		byStatus bool
		retry    bool
		after    time.Duration
	}{
		{"none", nil, true, true, 0},
		{"seconds", map[string]string{"Retry-After": "3"}, true, true, 3 * time.Second},
		{"fractional seconds", map[string]string{"Retry-After": "0.5"}, true, true, 500 * time.Millisecond},
		{"HTTP date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, true, true, 90 * time.Second},
		{"date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, true, true, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, true, true, 0},
		{"negative", map[string]string{"Retry-After": "-1"}, true, true, 0},
		{"ms first", map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, true, true, 250 * time.Millisecond},
		{"should retry", map[string]string{"X-Should-Retry": "true"}, false, true, 0},
		{"should not retry", map[string]string{"X-Should-Retry": "false", "Retry-After": "1"}, true, false, time.Second},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.headers {
			h.Set(k, v)
		}
		retry, after := retryAdvice(h.Get, tt.byStatus, now)
		if retry != tt.retry || after != tt.after {
			t.Errorf("%s: retry %v after %s, want %v %s", tt.name, retry, after, tt.retry, tt.after)
		}
	}
}

func TestRetryWait(t *testing.T) {
	tests := []struct {
		attempt      int
		after, limit time.Duration
		wait         time.Duration
		ok           bool
	}{
		{0, 0, 10 * time.Second, 250 * time.Millisecond, true},
		{2, 0, 10 * time.Second, time.Second, true},
		{9, 0, 10 * time.Second, 5 * time.Second, true},
		{0, 3 * time.Second, 10 * time.Second, 3 * time.Second, true},
		{0, 10 * time.Second, 10 * time.Second, 10 * time.Second, true},
		{0, 11 * time.Second, 10 * time.Second, 11 * time.Second, false},
	}
	for _, tt := range tests {
		wait, ok := retryWait(250*time.Millisecond, tt.attempt, tt.after, tt.limit)
		if wait != tt.wait || ok != tt.ok {
			t.Errorf("retryWait(%d, %s, %s) = %s %v, want %s %v", tt.attempt, tt.after, tt.limit, wait, ok, tt.wait, tt.ok)
		}
	}
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		f       Format
		in, out string
	}{
		{FormatOpenAI, "https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"},
		{FormatOpenAI, "https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"},
		{FormatOpenAI, "https://api.openai.com", "https://api.openai.com/v1/chat/completions"},
		{FormatOpenAI, "https://generativelanguage.googleapis.com/v1beta/openai/", "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"},
		{FormatOpenAI, "https://x.example/openai/deployments/d/chat/completions?api-version=2024-10-21", "https://x.example/openai/deployments/d/chat/completions?api-version=2024-10-21"},
		{FormatOpenAI, "https://x.example/v1?key=k", "https://x.example/v1/chat/completions?key=k"},
		{FormatAnthropic, "https://api.anthropic.com", "https://api.anthropic.com/v1/messages"},
		{FormatAnthropic, "https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"},
		{FormatAnthropic, "https://api.anthropic.com/v1", "https://api.anthropic.com/v1/messages"},
		{FormatAnthropic, "https://gw.example/anthropic/v1/messages", "https://gw.example/anthropic/v1/messages"},
		{FormatChatbot, "https://crm.example/bot", "https://crm.example/bot"},
		{FormatWidget, "https://w.example/chat", "https://w.example/chat"},
	}
	for _, tt := range tests {
		w, _ := wireOf(tt.f)
		if got := endpoint(w, tt.in); got != tt.out {
			t.Errorf("%s %s: %s, want %s", tt.f, tt.in, got, tt.out)
		}
	}
}
