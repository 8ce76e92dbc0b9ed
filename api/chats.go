package api

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/stories"
)

// Limits of chat requests.
const (
	maxIDLen    = 256  // userId, externalId
	maxInputLen = 4096 // text, postback, goto
	maxMsgIDLen = 128  // messageId
	maxListed   = 1000 // GET /v1/chats?limit=
	// maxTranscriptPage is GET /v1/chats/:chatId's most (and default)
	// transcript entries.
	maxTranscriptPage = 1000
	// maxTurnAttempts bounds how often a turn is run again after another
	// process changed the chat first.
	maxTurnAttempts = 64
)

type createChatRequest struct {
	StoryID        string         `json:"storyId" jsonschema:"required"`
	UserID         string         `json:"userId"`
	ExternalID     string         `json:"externalId"`
	UserAttributes map[string]any `json:"userAttributes"`
	Attributes     map[string]any `json:"attributes"`
}

// turnAnswer is the answer to a turn: where the chat stands and what the
// bot said.
type turnAnswer struct {
	ChatID     string            `json:"chatId,omitempty"`
	Status     engine.Status     `json:"status"`
	Node       string            `json:"node"`
	Responses  []engine.Response `json:"responses"`
	Attributes map[string]any    `json:"attributes"`
	// Task is the chat's open hand-off task.
	Task *engine.Task `json:"task,omitempty"`
}

func answerOf(c *engine.Chat, t *engine.Turn) turnAnswer {
	a := turnAnswer{Status: c.Status, Node: c.Node, Responses: t.Output, Attributes: c.Attributes}
	if c.Task != nil && c.Task.Status == engine.TaskOpen {
		a.Task = c.Task
	}
	if a.Responses == nil {
		a.Responses = []engine.Response{}
	}
	return a
}

func checkLen(field, v string, max int) error {
	if n := utf8.RuneCountInString(v); n > max {
		return badRequest("field %s must be at most %d characters, got %d", field, max, n)
	}
	return nil
}

// createChat: POST /v1/chats starts a chat and runs its first turn.
func (s *Server) createChat(c *fiber.Ctx) error {
	var req createChatRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	if req.StoryID == "" {
		return badRequest("field storyId is required")
	}
	if !stories.ValidID(req.StoryID) {
		return badRequest("storyId %q is not a valid story id", req.StoryID)
	}
	if err := checkLen("userId", req.UserID, maxIDLen); err != nil {
		return err
	}
	if err := checkLen("externalId", req.ExternalID, maxIDLen); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    map[string]any
	}{{"userAttributes", req.UserAttributes}, {"attributes", req.Attributes}} {
		if n := engine.JSONSize(f.v); n > s.maxAttrs {
			return newError(http.StatusRequestEntityTooLarge, "attributes_too_large",
				"field %s is %d bytes, over the limit of %d (serve --max-attributes)", f.name, n, s.maxAttrs)
		}
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	st, err := s.story(ctx, req.StoryID, 0)
	if err != nil {
		return err
	}
	if err := s.writable(); err != nil {
		return err
	}
	chat := engine.NewChat(st, store.NewID(), req.UserID, req.ExternalID, req.UserAttributes, req.Attributes)
	t, err := s.runner.Start(ctx, st, chat)
	if err != nil {
		return fmt.Errorf("start chat: %w", err)
	}
	if err := s.createChatRecord(ctx, chat, s.newChatEvents(ctx, chat, t)); err != nil {
		return fmt.Errorf("create chat: %w", err)
	}
	a := answerOf(chat, t)
	a.ChatID = chat.ID
	body, err := marshal(&a)
	if err != nil {
		return fmt.Errorf("create chat: encode answer: %w", err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(http.StatusCreated).Send(body)
}

type messageRequest struct {
	Text      *string `json:"text"`
	Postback  *string `json:"postback"`
	Goto      *string `json:"goto"`
	MessageID *string `json:"messageId"`
}

func (r *messageRequest) input() (engine.Input, string, error) {
	var in engine.Input
	n := 0
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{"text", r.Text, &in.Text}, {"postback", r.Postback, &in.Postback}, {"goto", r.Goto, &in.Goto}} {
		if f.v == nil {
			continue
		}
		n++
		if *f.v == "" {
			return in, "", badRequest("field %s must not be empty", f.name)
		}
		if err := checkLen(f.name, *f.v, maxInputLen); err != nil {
			return in, "", err
		}
		*f.dst = *f.v
	}
	if n != 1 {
		return in, "", badRequest("want exactly one of text, postback or goto")
	}
	id := ""
	if r.MessageID != nil {
		id = *r.MessageID
		if id == "" {
			return in, "", badRequest("field messageId must not be empty")
		}
		if err := checkLen("messageId", id, maxMsgIDLen); err != nil {
			return in, "", err
		}
	}
	return in, id, nil
}

// postMessage: POST /v1/chats/:chatId/messages runs one turn.
func (s *Server) postMessage(c *fiber.Ctx) error {
	chatID := c.Params("chatId")
	var req messageRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	in, msgID, err := req.input()
	if err != nil {
		return err
	}
	body, err := s.turn(chatID, in, msgID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(body)
}

// turn runs the turn that follows input in on chat chatID and returns the
// JSON answer. Turns of one chat run one at a time in call order. With a
// messageID, a repeated id returns the first answer and runs nothing. A
// turn that loses a race with another process is run again on the fresh
// chat.
func (s *Server) turn(chatID string, in engine.Input, messageID string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	s.chats.acquire(chatID)
	defer s.chats.release(chatID)
	for attempt := 1; ; attempt++ {
		if messageID != "" {
			body, ok, err := s.st.GetReply(ctx, chatID, messageID)
			if err != nil {
				return nil, fmt.Errorf("turn: %w", err)
			}
			if ok {
				return body, nil
			}
		}
		chat, err := s.chatForTurn(ctx, chatID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("chat", chatID)
		}
		if err != nil {
			return nil, fmt.Errorf("turn: %w", err)
		}
		st, err := s.story(ctx, chat.StoryID, chat.StoryVersion)
		if err != nil {
			return nil, err
		}
		if err := s.writable(); err != nil {
			return nil, err
		}
		before := chat.Status
		t, err := s.runner.Send(ctx, st, chat, in)
		switch {
		case errors.Is(err, engine.ErrChatClosed):
			return nil, &Error{Status: http.StatusConflict, Code: "chat_closed", Message: fmt.Sprintf("chat %s is %s", chatID, chat.Status), Err: err}
		case errors.Is(err, engine.ErrGotoNotOffered):
			return nil, &Error{Status: http.StatusConflict, Code: "goto_not_offered", Message: fmt.Sprintf("goto: node %q was not offered by a goto button of the chat's last bot turn", in.Goto), Err: err}
		case in.Goto != "" && errors.Is(err, engine.ErrNoNode):
			return nil, newError(http.StatusBadRequest, "unknown_node", "goto: story %q has no node %q", st.ID, in.Goto)
		case err != nil:
			return nil, fmt.Errorf("turn: %w", err)
		}
		evs := turnEvents(chat, t, false, before, s.subscribers.wants(ctx, s.outbox))
		a := answerOf(chat, t)
		body, err := marshal(&a)
		if err != nil {
			return nil, fmt.Errorf("turn: encode answer: %w", err)
		}
		var reply *store.Reply
		if messageID != "" {
			reply = &store.Reply{MessageID: messageID, Body: body}
		}
		err = s.updateChatRecord(ctx, chat, reply, evs)
		if err == nil {
			return body, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("turn: %w", err)
		}
		s.log.Debug("turn lost a race with another process; running it again", "chat", chatID, "attempt", attempt)
		if attempt >= maxTurnAttempts {
			return nil, &Error{Status: http.StatusServiceUnavailable, Code: "busy",
				Message: "the chat kept changing under this turn; try again", Err: err}
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, err
		}
	}
}

// turnReader is a store that can give a turn its cached chat without a
// query (the MongoDB store): UpdateChat's compare-and-set catches a stale
// one, and the turn runs again. While the store is failing, boundedStore
// reads the chat instead, so that a turn whose store cannot be read fails
// before any webhook runs.
type turnReader interface {
	GetChatForTurn(ctx context.Context, id string) (*engine.Chat, error)
}

func (s *Server) chatForTurn(ctx context.Context, id string) (*engine.Chat, error) {
	if r, ok := s.st.(turnReader); ok {
		return r.GetChatForTurn(ctx, id)
	}
	return s.st.GetChat(ctx, id)
}

// backoff is a random wait before attempt+1, growing to at most 50ms.
func backoff(attempt int) time.Duration {
	limit := time.Millisecond << min(attempt, 6)
	limit = min(limit, 50*time.Millisecond)
	return time.Duration(rand.Int64N(int64(limit))) + time.Millisecond/4
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// getChat: GET /v1/chats/:chatId?after=&limit=, the state and the
// transcript: its entries with seq above after (default 0), at most limit
// (default and most maxTranscriptPage). The chat's seq is its last entry's:
// a client pages on with after = the last seq it got while that is lower.
func (s *Server) getChat(c *fiber.Ctx) error {
	id := c.Params("chatId")
	after, limit := int64(0), maxTranscriptPage
	if v := c.Query("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after must be a number from 0, got %q", v)
		}
		after = n
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTranscriptPage {
			return badRequest("limit must be 1 to %d, got %q", maxTranscriptPage, v)
		}
		limit = n
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	chat, err := s.st.GetChat(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("chat", id)
	}
	if err != nil {
		return fmt.Errorf("get chat: %w", err)
	}
	tr, err := s.st.GetTranscript(ctx, id, after, limit)
	if err != nil {
		return fmt.Errorf("get chat: %w", err)
	}
	// Entries of a turn that ended between the two reads wait for the next.
	for len(tr) > 0 && tr[len(tr)-1].Seq > chat.Seq {
		tr = tr[:len(tr)-1]
	}
	if tr == nil {
		tr = []engine.Entry{}
	}
	chat.Transcript = tr
	return c.JSON(viewChat(chat))
}

// chatItem is a chat in a list (no transcript).
type chatItem struct {
	ID           string        `json:"id"`
	StoryID      string        `json:"storyId"`
	StoryVersion int           `json:"storyVersion"`
	Status       engine.Status `json:"status"`
	Node         string        `json:"node"`
	UserID       string        `json:"userId"`
	ExternalID   string        `json:"externalId,omitempty"`
	CreatedAt    msTime        `json:"createdAt"`
	UpdatedAt    msTime        `json:"updatedAt"`
}

// listChats: GET /v1/chats?storyId=&status=&limit=&after=.
func (s *Server) listChats(c *fiber.Ctx) error {
	f := store.ChatFilter{StoryID: c.Query("storyId"), Status: engine.Status(c.Query("status")), After: c.Query("after")}
	if f.StoryID != "" && !stories.ValidID(f.StoryID) {
		return badRequest("storyId %q is not a valid story id", f.StoryID)
	}
	switch f.Status {
	case "", engine.StatusActive, engine.StatusCompleted, engine.StatusHandoff, engine.StatusFailed:
	default:
		return badRequest("status %q unknown (want active, completed, handoff or failed)", f.Status)
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListed {
			return badRequest("limit must be 1 to %d, got %q", maxListed, v)
		}
		f.Limit = n
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	chats, err := s.st.ListChats(ctx, f)
	if err != nil {
		return fmt.Errorf("list chats: %w", err)
	}
	out := make([]chatItem, 0, len(chats))
	for _, ch := range chats {
		out = append(out, chatItem{ID: ch.ID, StoryID: ch.StoryID, StoryVersion: ch.StoryVersion, Status: ch.Status,
			Node: ch.Node, UserID: ch.UserID, ExternalID: ch.ExternalID, CreatedAt: msTime(ch.CreatedAt), UpdatedAt: msTime(ch.UpdatedAt)})
	}
	return c.JSON(out)
}
