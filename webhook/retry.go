package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// retryAdvice reads what an error answer says about retrying, as the
// official OpenAI and Anthropic SDKs do: x-should-retry (true or false)
// overrides the status rule, and retry-after-ms or Retry-After (seconds or
// an HTTP date) is how long to wait.
func retryAdvice(header func(name string) string, byStatus bool, now time.Time) (bool, time.Duration) {
	retry := byStatus
	switch header("X-Should-Retry") {
	case "true":
		retry = true
	case "false":
		retry = false
	}
	if v := header("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return retry, time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(header("Retry-After"))
	if v == "" {
		return retry, 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < 1e6 {
			return retry, time.Duration(s * float64(time.Second))
		}
		return retry, 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return retry, t.Sub(now)
	}
	return retry, 0
}

// retryWait is the wait before retry number attempt+1: the backoff
// (doubling, at most 5 s), or the service's Retry-After when it asks for
// one. A Retry-After longer than the timeout is not waited for (false):
// the call fails now rather than outlive its node's timeout.
func retryWait(backoff time.Duration, attempt int, after, timeout time.Duration) (time.Duration, bool) {
	if after > 0 {
		return after, after <= timeout
	}
	wait := backoff << attempt
	if wait > 5*time.Second || wait <= 0 {
		wait = 5 * time.Second
	}
	return wait, true
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
