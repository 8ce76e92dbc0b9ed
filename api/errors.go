package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Error is an API error: an HTTP status, a snake_case code and a one-line
// message. Handlers return it; errorHandler writes it.
type Error struct {
	Status  int
	Code    string
	Message string
	// Lints are the problems of a story that does not load (422).
	Lints []Lint
	// Err is the cause, logged for 5xx.
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// errorBody is what every error answer holds.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Lints []Lint `json:"lints,omitempty"`
}

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: oneLine(fmt.Sprintf(format, args...))}
}

func badRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "invalid_request", format, args...)
}

func notFound(what, id string) *Error {
	return newError(http.StatusNotFound, strings.ReplaceAll(what, " ", "_")+"_not_found", "%s %q not found", what, id)
}

// oneLine joins the lines of s with "; ".
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var parts []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// fiberCodes name the errors fiber and fasthttp raise by themselves.
var fiberCodes = map[int]string{
	http.StatusBadRequest:                  "invalid_request",
	http.StatusUnauthorized:                "unauthorized",
	http.StatusNotFound:                    "not_found",
	http.StatusMethodNotAllowed:            "method_not_allowed",
	http.StatusRequestTimeout:              "request_timeout",
	http.StatusRequestEntityTooLarge:       "body_too_large",
	http.StatusRequestHeaderFieldsTooLarge: "headers_too_large",
	http.StatusUnsupportedMediaType:        "unsupported_media_type",
	http.StatusTooManyRequests:             "rate_limited",
	http.StatusServiceUnavailable:          "unavailable",
}

// toError maps any error to an API error; this is the one place where
// errors get their status.
func (s *Server) toError(err error) *Error {
	var ae *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		code := fiberCodes[fe.Code]
		if code == "" {
			code = strings.ReplaceAll(strings.ToLower(http.StatusText(fe.Code)), " ", "_")
		}
		// fiber's own messages can quote the raw request (a header that
		// does not parse, Authorization included): say only the status.
		msg := http.StatusText(fe.Code)
		switch fe.Code {
		case http.StatusRequestEntityTooLarge:
			msg = fmt.Sprintf("request body is larger than %d bytes", s.bodyLimit)
		case http.StatusNotFound:
			if m, ok := strings.CutPrefix(fe.Message, "Cannot "); ok && len(m) < 300 {
				msg = "no such route: " + m
			}
		case http.StatusBadRequest:
			msg = "malformed HTTP request"
		}
		return &Error{Status: fe.Code, Code: code, Message: oneLine(msg), Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: "changed by another request; try again", Err: err}
	case errors.Is(err, store.ErrExists):
		return &Error{Status: http.StatusConflict, Code: "already_exists", Message: "already exists", Err: err}
	case errors.Is(err, engine.ErrChatClosed):
		return &Error{Status: http.StatusConflict, Code: "chat_closed", Message: oneLine(err.Error()), Err: err}
	case faultError(err) != nil:
		return faultError(err)
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: "timeout", Message: "the request took too long", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Code: "shutting_down", Message: "the server is shutting down", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
}

// errorHandler writes err as {"error", "code"}; 5xx are logged.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	e := s.toError(err)
	if e.Status >= 500 {
		cause := err
		if e.Err != nil {
			cause = e.Err
		}
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", e.Status, "code", e.Code, "err", cause)
	}
	if e.Status == http.StatusMethodNotAllowed && e.Message == http.StatusText(http.StatusMethodNotAllowed) {
		e.Message = fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", c.Method(), c.Path(), c.GetRespHeader(fiber.HeaderAllow))
	}
	if e.Status == http.StatusServiceUnavailable {
		ra := retryAfter[e.Code]
		if ra == "" {
			ra = "1"
		}
		c.Set(fiber.HeaderRetryAfter, ra)
		s.metrics.unavailable.WithLabelValues(e.Code).Inc()
	}
	if e.Status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="storyflow"`)
	}
	return c.Status(e.Status).JSON(errorBody{Error: e.Message, Code: e.Code, Lints: e.Lints})
}

// storeUnavailable tells whether err says that the store (MongoDB) cannot
// be reached or is going away: a network error, a driver error labelled
// NetworkError or RetryableWriteError, a server error of a server that is
// shutting down or not the primary, or no server to select.
func storeUnavailable(err error) bool {
	var ne net.Error
	var labeled interface{ HasErrorLabel(string) bool }
	var coded interface{ HasErrorCode(int) bool }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The request's own deadline (a net.Error too): timeout or
		// shutting_down, unless no server could be selected in time.
		return strings.Contains(err.Error(), "server selection error")
	case errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return true
	case errors.As(err, &labeled) && (labeled.HasErrorLabel("NetworkError") || labeled.HasErrorLabel("RetryableWriteError")):
		return true
	case errors.As(err, &coded):
		for _, c := range unavailableCodes {
			if coded.HasErrorCode(c) {
				return true
			}
		}
	}
	return strings.Contains(err.Error(), "server selection error")
}

// unavailableCodes are MongoDB error codes of a server going away or not
// in a state to serve: HostUnreachable, HostNotFound, NetworkTimeout,
// ShutdownInProgress, PrimarySteppedDown, SocketException,
// NotWritablePrimary, InterruptedAtShutdown,
// InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk,
// NotPrimaryOrSecondary; and InternalError, which FerretDB answers for a
// command its shutdown cut short (a fault of the database, not a bug of
// storyflow; the log keeps the cause).
var unavailableCodes = []int{6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436, 1}
