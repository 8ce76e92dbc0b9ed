package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// maxContactChats bounds the chats one contact request reads or changes.
const maxContactChats = 1000

// newChatEvents returns the events of a chat's creation: contact.created
// first when no other chat has its user, then the turn's.
func (s *Server) newChatEvents(ctx context.Context, c *engine.Chat, t *engine.Turn) []store.Event {
	var evs []store.Event
	if s.outbox != nil && c.UserID != c.ID {
		others, err := s.st.ListChats(ctx, store.ChatFilter{UserID: c.UserID, Limit: 1})
		if err != nil {
			s.log.Warn("contact lookup", "user", c.UserID, "err", err)
		} else if len(others) == 0 {
			evs = append(evs, store.NewEvent(evContactCreated, "user:"+c.UserID, contactData(c.UserID, c.UserAttributes)))
		}
	}
	return append(evs, turnEvents(c, t, true, "", s.subscribers.wants(ctx, s.outbox))...)
}

func contactData(user string, attrs map[string]any) map[string]any {
	return map[string]any{"userId": user, "userAttributes": attrs}
}

// contact is a user as the API shows it: the userAttributes of their
// latest chat and their chats.
type contact struct {
	UserID         string         `json:"userId"`
	UserAttributes map[string]any `json:"userAttributes"`
	Chats          []contactChat  `json:"chats"`
}

type contactChat struct {
	ID        string        `json:"id"`
	StoryID   string        `json:"storyId"`
	Status    engine.Status `json:"status"`
	UpdatedAt time.Time     `json:"updatedAt"`
}

// userChats returns the chats of user (404 when there are none).
func (s *Server) userChats(ctx context.Context, user string) ([]*engine.Chat, error) {
	if user == "" || len(user) > maxIDLen {
		return nil, badRequest("userId must be 1 to %d characters", maxIDLen)
	}
	chats, err := s.st.ListChats(ctx, store.ChatFilter{UserID: user, Limit: maxContactChats})
	if err != nil {
		return nil, fmt.Errorf("contact: %w", err)
	}
	if len(chats) == 0 {
		return nil, notFound("contact", user)
	}
	return chats, nil
}

func contactOf(user string, chats []*engine.Chat) contact {
	ct := contact{UserID: user, UserAttributes: map[string]any{}}
	var latest time.Time
	for _, c := range chats {
		ct.Chats = append(ct.Chats, contactChat{ID: c.ID, StoryID: c.StoryID, Status: c.Status, UpdatedAt: c.UpdatedAt})
		if !c.UpdatedAt.Before(latest) && c.UserAttributes != nil {
			latest, ct.UserAttributes = c.UpdatedAt, c.UserAttributes
		}
	}
	return ct
}

// getContact: GET /v1/contacts/:userId.
func (s *Server) getContact(c *fiber.Ctx) error {
	ctx, cancel := s.requestContext()
	defer cancel()
	user := c.Params("userId")
	chats, err := s.userChats(ctx, user)
	if err != nil {
		return err
	}
	return c.JSON(contactOf(user, chats))
}

type putContactRequest struct {
	UserAttributes map[string]any `json:"userAttributes"`
}

// putContact: PUT /v1/contacts/:userId {userAttributes} replaces the
// userAttributes of every chat of the user.
func (s *Server) putContact(c *fiber.Ctx) error {
	var req putContactRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	if req.UserAttributes == nil {
		return badRequest("field userAttributes is required")
	}
	if n := engine.JSONSize(req.UserAttributes); n > s.maxAttrs {
		return newError(http.StatusRequestEntityTooLarge, "attributes_too_large",
			"field userAttributes is %d bytes, over the limit of %d (serve --max-attributes)", n, s.maxAttrs)
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	user := c.Params("userId")
	chats, err := s.userChats(ctx, user)
	if err != nil {
		return err
	}
	// The event goes with the first chat's write.
	evs := []store.Event{store.NewEvent(evContactUpdated, "user:"+user, contactData(user, req.UserAttributes))}
	var out []*engine.Chat
	for _, ch := range chats {
		updated, err := s.changeChat(ctx, ch.ID, false, func(cur *engine.Chat) ([]store.Event, error) {
			cur.UserAttributes = maps.Clone(req.UserAttributes)
			cur.UpdatedAt = time.Now().UTC()
			return evs, nil
		})
		if err != nil {
			return err
		}
		evs = nil
		out = append(out, updated)
	}
	return c.JSON(contactOf(user, out))
}

// deleteContact: DELETE /v1/contacts/:userId erases the user's personal
// data: each of their chats loses its user id (it becomes the chat's id),
// external id, attributes and userAttributes, and every transcript entry's
// text. It answers how many chats and entries it touched.
func (s *Server) deleteContact(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	user := c.Params("userId")
	chats, err := s.userChats(ctx, user)
	if err != nil {
		return err
	}
	evs := []store.Event{store.NewEvent(evContactDeleted, "user:"+user, map[string]any{"userId": user, "chats": len(chats)})}
	var entries int64
	for _, ch := range chats {
		var n int64
		_, err := s.changeChat(ctx, ch.ID, true, func(cur *engine.Chat) ([]store.Event, error) {
			cur.UserID, cur.ExternalID = cur.ID, ""
			cur.Attributes, cur.UserAttributes = map[string]any{}, map[string]any{}
			if cur.Task != nil {
				task := *cur.Task
				task.Data = map[string]any{}
				cur.Task = &task
			}
			tr := slices.Clone(cur.Transcript)
			for i := range tr {
				store.EraseEntry(&tr[i])
			}
			cur.Transcript = tr
			cur.UpdatedAt = time.Now().UTC()
			n = cur.Seq
			return evs, nil
		})
		if err != nil {
			return err
		}
		entries += n
		evs = nil
	}
	streams := []string{"user:" + user}
	for _, ch := range chats {
		streams = append(streams, ch.ID)
	}
	deliveries, err := ob.EraseDeliveries(ctx, streams, eraseEvent)
	if err != nil {
		return fmt.Errorf("erase deliveries: %w", err)
	}
	return c.JSON(fiber.Map{"userId": user, "chats": len(chats), "entries": entries, "deliveries": deliveries})
}

// eraseEvent keeps of an erased user's event only what names things (its
// chat, story, task, status, node) and says it was erased. contact.deleted
// keeps its user id: its receivers need it to erase the user too.
func eraseEvent(e *store.Event) {
	if e.Name == evContactDeleted {
		return
	}
	kept := map[string]any{"erased": true}
	for _, k := range []string{"chatId", "storyId", "storyVersion", "taskId", "status", "node"} {
		if v, ok := e.Data[k]; ok {
			kept[k] = v
		}
	}
	e.Data = kept
}
