package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Signature headers (SPEC §3).
const (
	HeaderTimestamp = "X-Storyflow-Timestamp"
	HeaderSignature = "X-Storyflow-Signature"
	HeaderMessageID = "X-Storyflow-Message-Id"
	signaturePrefix = "sha256="
)

// Sign returns the X-Storyflow-Signature value of body sent at timestamp
// (unix seconds): "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<body>"
// keyed by token.
func Sign(token, timestamp string, body []byte) string {
	var sum [sha256.Size]byte
	var out [len(signaturePrefix) + 2*sha256.Size]byte
	copy(out[:], signaturePrefix)
	hex.Encode(out[len(signaturePrefix):], mac(token, timestamp, body, sum[:0]))
	return string(out[:])
}

func mac(token, timestamp string, body, dst []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(timestamp + "."))
	m.Write(body)
	return m.Sum(dst)
}

// Errors of CheckSignature.
var (
	ErrNoSignature  = errors.New("signature headers missing")
	ErrBadSignature = errors.New("signature mismatch")
	ErrStale        = errors.New("timestamp outside the allowed window")
)

// CheckSignature checks a request's signature headers against its raw body,
// as a bot owner's service does: the timestamp must lie within maxSkew of
// now and the HMAC must match (compared in constant time).
func CheckSignature(token, timestamp, signature string, body []byte, now time.Time, maxSkew time.Duration) error {
	if timestamp == "" || signature == "" {
		return ErrNoSignature
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(secs, 0)); d > maxSkew || d < -maxSkew {
		return ErrStale
	}
	got, err := hex.DecodeString(strings.TrimPrefix(signature, signaturePrefix))
	if err != nil || !strings.HasPrefix(signature, signaturePrefix) {
		return ErrBadSignature
	}
	var sum [sha256.Size]byte
	if !hmac.Equal(got, mac(token, timestamp, body, sum[:0])) {
		return ErrBadSignature
	}
	return nil
}
