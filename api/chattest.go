package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/storytest"
)

// maxRecordEntries bounds the transcript a recorded test is made of.
const maxRecordEntries = 5000

// chatTest: GET /v1/chats/:chatId/test, the chat as a story test case
// (YAML, storytest.Record): its inputs as steps, its responses as
// expectations, its webhook answers as mocks.
func (s *Server) chatTest(c *fiber.Ctx) error {
	id := c.Params("chatId")
	ctx, cancel := s.requestContext()
	defer cancel()
	chat, err := s.st.GetChat(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("chat", id)
	}
	if err != nil {
		return fmt.Errorf("record chat: %w", err)
	}
	tr, err := s.st.GetTranscript(ctx, id, 0, maxRecordEntries+1)
	if err != nil {
		return fmt.Errorf("record chat: %w", err)
	}
	if len(tr) > maxRecordEntries {
		return newError(http.StatusUnprocessableEntity, "chat_too_long", "chat %q has more than %d transcript entries to record", id, maxRecordEntries)
	}
	// Entries of a turn that ended between the two reads wait for the next.
	for len(tr) > 0 && tr[len(tr)-1].Seq > chat.Seq {
		tr = tr[:len(tr)-1]
	}
	st, err := s.story(ctx, chat.StoryID, chat.StoryVersion)
	if err != nil {
		return err
	}
	body, err := storytest.Record(st, chat, tr)
	if err != nil {
		return fmt.Errorf("record chat %s: %w", id, err)
	}
	c.Set(fiber.HeaderContentType, "application/yaml; charset=utf-8")
	return c.Send(body)
}
