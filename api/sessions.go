package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// DefaultSessionIdle is how long a channel session (widget session_id,
// platform conversation_id) keeps its chat without a message.
const DefaultSessionIdle = 30 * time.Minute

// Channels whose sessions map to chats.
const (
	channelWidget   = "widget"
	channelPlatform = "platform"
)

// sessionChatID is the id of the chat of a channel's session on a story.
// It is a hash of all three, so a session id names a chat of that story
// and channel only: it is never a way into another story's chats.
func sessionChatID(channel, storyID, session string) string {
	h := sha256.Sum256([]byte(channel + "\x00" + storyID + "\x00" + session))
	return channel + "-" + hex.EncodeToString(h[:16])
}

// sessionUser is who starts a session's chat.
type sessionUser struct {
	UserID, ExternalID string
	UserAttributes     map[string]any
}

// sessionTurn gives prompt to the chat of a channel session. The chat is
// started on first use, and started again (same id, transcript kept, fresh
// attributes, the story's latest version) once it is completed or failed,
// or when it has been idle longer than the session idle time. A started
// chat that waits takes prompt as its first input. It returns the chat and
// every response of the request (the start's, then the input's).
func (s *Server) sessionTurn(storyID, chatID, prompt string, user sessionUser) (*engine.Chat, []engine.Response, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	s.chats.acquire(chatID)
	defer s.chats.release(chatID)
	for attempt := 1; ; attempt++ {
		chat, out, err := s.sessionAttempt(ctx, storyID, chatID, prompt, user)
		if err == nil {
			return chat, out, nil
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) {
			return nil, nil, err
		}
		if attempt >= maxTurnAttempts {
			return nil, nil, &Error{Status: http.StatusServiceUnavailable, Code: "busy",
				Message: "the chat kept changing under this turn; try again", Err: err}
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, nil, err
		}
	}
}

func (s *Server) sessionAttempt(ctx context.Context, storyID, chatID, prompt string, user sessionUser) (*engine.Chat, []engine.Response, error) {
	old, err := s.st.GetChat(ctx, chatID)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		if werr := s.writable(); werr != nil {
			return nil, nil, werr
		}
	}
	fresh := errors.Is(err, store.ErrNotFound)
	if err != nil && !fresh {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	if !fresh && old.StoryID != storyID {
		// Only a hash collision gets here; never hand the chat out.
		return nil, nil, newError(http.StatusConflict, "session_conflict", "session belongs to another story")
	}
	if !fresh && !s.sessionOver(old) {
		st, err := s.story(ctx, old.StoryID, old.StoryVersion)
		if err != nil {
			return nil, nil, err
		}
		t, err := s.runner.Send(ctx, st, old, inputFor(lastBotTurn(old), prompt))
		if err != nil {
			return nil, nil, fmt.Errorf("session turn: %w", err)
		}
		out := append([]engine.Response(nil), t.Output...)
		if err := s.st.UpdateChat(ctx, old, nil); err != nil {
			return nil, nil, fmt.Errorf("session turn: %w", err)
		}
		return old, out, nil
	}

	st, err := s.story(ctx, storyID, 0)
	if err != nil {
		return nil, nil, err
	}
	chat := engine.NewChat(st, chatID, user.UserID, user.ExternalID, user.UserAttributes, nil)
	if !fresh {
		// The same record goes on: its transcript, numbering and revision.
		chat.UserID, chat.CreatedAt = old.UserID, old.CreatedAt
		chat.Transcript, chat.Seq, chat.Rev = old.Transcript, old.Seq, old.Rev
	}
	t, err := s.runner.Start(ctx, st, chat)
	if err != nil {
		return nil, nil, fmt.Errorf("start session chat: %w", err)
	}
	out := append([]engine.Response(nil), t.Output...)
	if chat.Status == engine.StatusHandoff || (chat.Status == engine.StatusActive && chat.Waiting) {
		t, err := s.runner.Send(ctx, st, chat, inputFor(out, prompt))
		if err != nil {
			return nil, nil, fmt.Errorf("session turn: %w", err)
		}
		out = append(out, t.Output...)
	}
	if fresh {
		err = s.st.CreateChat(ctx, chat)
	} else {
		err = s.st.UpdateChat(ctx, chat, nil)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("session chat: %w", err)
	}
	return chat, out, nil
}

// sessionOver tells whether a session's chat is done with: closed, or idle
// too long.
func (s *Server) sessionOver(c *engine.Chat) bool {
	switch c.Status {
	case engine.StatusCompleted, engine.StatusFailed:
		return true
	}
	return time.Since(c.UpdatedAt) > s.idle
}

// lastBotTurn returns the responses the bot sent since the user's last input.
func lastBotTurn(c *engine.Chat) []engine.Response {
	i := len(c.Transcript)
	for i > 0 && c.Transcript[i-1].From != "user" {
		i--
	}
	var out []engine.Response
	for _, e := range c.Transcript[i:] {
		if e.Response != nil {
			out = append(out, *e.Response)
		}
	}
	return out
}

// inputFor reads a channel's plain-text prompt: the value of a postback or
// goto button that offered responses hold is that button pressed; so is,
// failing that, a button's title typed (case and spaces aside). Anything
// else is text.
func inputFor(offered []engine.Response, prompt string) engine.Input {
	var byTitle *engine.Button
	typed := strings.TrimSpace(prompt)
	for i := range offered {
		for _, b := range buttonsOf(&offered[i]) {
			if b.Type != "postback" && b.Type != "goto" {
				continue
			}
			if b.Value == prompt {
				return pressed(b)
			}
			if byTitle == nil && typed != "" && strings.EqualFold(b.Title, typed) {
				byTitle = &b
			}
		}
	}
	if byTitle != nil {
		return pressed(*byTitle)
	}
	return engine.Input{Text: prompt}
}

func pressed(b engine.Button) engine.Input {
	if b.Type == "goto" {
		return engine.Input{Goto: b.Value}
	}
	return engine.Input{Postback: b.Value}
}

// buttonsOf returns every button of a response, those of its cards included.
func buttonsOf(r *engine.Response) []engine.Button {
	if len(r.Elements) == 0 {
		return r.Buttons
	}
	bs := append([]engine.Button(nil), r.Buttons...)
	for _, c := range r.Elements {
		bs = append(bs, c.Buttons...)
	}
	return bs
}

// textOf returns a text response's message ("" for other types).
func textOf(r *engine.Response) string {
	switch r.Type {
	case engine.TypeText:
		return r.Message
	case engine.TypeRandomText:
		if r.Message != "" {
			return r.Message
		}
		if len(r.Messages) > 0 {
			return r.Messages[0]
		}
	}
	return ""
}
