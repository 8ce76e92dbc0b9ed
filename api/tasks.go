package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/stories"
)

// Limits of hand-off requests.
const (
	maxAgentText  = 4096
	maxTasksPage  = 1000
	maxTaskScan   = 10000 // chats read per GET /v1/tasks page at most
	maxAssigneeLn = 256
)

// changeChat runs change on chat id under the chat's queue and stores the
// chat with change's events; a write that loses a race with another
// process is run again on the fresh chat. erase stores through EraseChat.
func (s *Server) changeChat(ctx context.Context, id string, erase bool, change func(c *engine.Chat) ([]store.Event, error)) (*engine.Chat, error) {
	s.chats.acquire(id)
	defer s.chats.release(id)
	for attempt := 1; ; attempt++ {
		chat, err := s.st.GetChat(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("chat", id)
		}
		if err != nil {
			return nil, err
		}
		evs, err := change(chat)
		if err != nil {
			return nil, err
		}
		if erase {
			err = s.outbox.EraseChat(ctx, chat, evs)
			s.notify()
		} else {
			err = s.updateChatRecord(ctx, chat, nil, evs)
		}
		if err == nil {
			return chat, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		if attempt >= maxTurnAttempts {
			return nil, &Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: "the chat kept changing; try again", Err: err}
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, err
		}
	}
}

func notInHandoff(c *engine.Chat) error {
	return newError(http.StatusConflict, "not_in_handoff", "chat %s is %s, not in handoff", c.ID, c.Status)
}

type agentMessageRequest struct {
	Text  *string `json:"text"`
	Agent string  `json:"agent"`
}

// postAgentMessage: POST /v1/chats/:chatId/agent-messages adds a human's
// reply to the transcript of a chat in handoff.
func (s *Server) postAgentMessage(c *fiber.Ctx) error {
	var req agentMessageRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	if req.Text == nil || *req.Text == "" {
		return badRequest("field text is required")
	}
	if err := checkLen("text", *req.Text, maxAgentText); err != nil {
		return err
	}
	if err := checkLen("agent", req.Agent, maxAssigneeLn); err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	var entry engine.Entry
	chat, err := s.changeChat(ctx, c.Params("chatId"), false, func(ch *engine.Chat) ([]store.Event, error) {
		if ch.Status != engine.StatusHandoff {
			return nil, notInHandoff(ch)
		}
		entry = engine.Entry{From: "agent", Node: ch.Node, Time: time.Now().UTC(),
			Response: &engine.Response{Type: engine.TypeText, Message: *req.Text}}
		ch.Append(entry)
		ch.UpdatedAt = entry.Time
		entry = ch.Transcript[len(ch.Transcript)-1]
		data := chatData(ch)
		data["agentMessage"] = *req.Text
		if req.Agent != "" {
			data["agent"] = req.Agent
		}
		return []store.Event{store.NewEvent(evConversationUpdated, ch.ID, data)}, nil
	})
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{"chatId": chat.ID, "seq": entry.Seq, "status": chat.Status})
}

type resumeRequest struct {
	Node *string `json:"node"`
}

// resumeChat: POST /v1/chats/:chatId/resume gives a chat in handoff back
// to the bot: its open task is completed and a turn runs from node (the
// story's start by default); the answer is the turn's.
func (s *Server) resumeChat(c *fiber.Ctx) error {
	var req resumeRequest
	if body := c.Body(); len(body) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	var t *engine.Turn
	chat, err := s.changeChat(ctx, c.Params("chatId"), false, func(ch *engine.Chat) ([]store.Event, error) {
		if ch.Status != engine.StatusHandoff {
			return nil, notInHandoff(ch)
		}
		st, err := s.story(ctx, ch.StoryID, ch.StoryVersion)
		if err != nil {
			return nil, err
		}
		node := st.Start
		if req.Node != nil {
			node = *req.Node
			if _, ok := st.Nodes[node]; !ok {
				return nil, newError(http.StatusBadRequest, "unknown_node", "resume: story %q has no node %q", st.ID, node)
			}
		}
		var evs []store.Event
		if ch.Task != nil && ch.Task.Status == engine.TaskOpen {
			task := *ch.Task
			task.Status, task.UpdatedAt = engine.TaskCompleted, time.Now().UTC().Truncate(time.Millisecond)
			ch.Task = &task
			evs = append(evs, store.NewEvent(evTaskCompleted, ch.ID, taskData(ch, ch.Task)))
		}
		if err := s.writable(); err != nil {
			return nil, err
		}
		ch.Status, ch.Node, ch.Waiting, ch.Error = engine.StatusActive, node, false, ""
		t, err = s.runner.Start(ctx, st, ch)
		if err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		return append(evs, turnEvents(ch, t, false, engine.StatusHandoff, s.subscribers.wants(ctx, s.outbox))...), nil
	})
	if err != nil {
		return err
	}
	a := answerOf(chat, t)
	body, err := marshal(&a)
	if err != nil {
		return fmt.Errorf("resume: encode answer: %w", err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(body)
}

// taskItem is a task in the API: the task and its chat.
type taskItem struct {
	engine.Task
	ChatID  string `json:"chatId"`
	StoryID string `json:"storyId"`
	UserID  string `json:"userId"`
}

func taskItemOf(c *engine.Chat) taskItem {
	return taskItem{Task: *c.Task, ChatID: c.ID, StoryID: c.StoryID, UserID: c.UserID}
}

// listTasks: GET /v1/tasks?status=open|completed&storyId=&limit=&after=
// (after: a chat id, to page on).
func (s *Server) listTasks(c *fiber.Ctx) error {
	status := engine.TaskStatus(c.Query("status"))
	switch status {
	case "", engine.TaskOpen, engine.TaskCompleted:
	default:
		return badRequest("status %q unknown (want open or completed)", status)
	}
	f := store.ChatFilter{StoryID: c.Query("storyId"), After: c.Query("after"), Limit: 500}
	if f.StoryID != "" && !stories.ValidID(f.StoryID) {
		return badRequest("storyId %q is not a valid story id", f.StoryID)
	}
	if status == engine.TaskOpen {
		f.Status = engine.StatusHandoff
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTasksPage {
			return badRequest("limit must be 1 to %d, got %q", maxTasksPage, v)
		}
		limit = n
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	out := []taskItem{}
	for scanned := 0; scanned < maxTaskScan && len(out) < limit; {
		chats, err := s.st.ListChats(ctx, f)
		if err != nil {
			return fmt.Errorf("list tasks: %w", err)
		}
		for _, ch := range chats {
			if ch.Task != nil && (status == "" || ch.Task.Status == status) && len(out) < limit {
				out = append(out, taskItemOf(ch))
			}
		}
		scanned += len(chats)
		if len(chats) < f.Limit {
			break
		}
		f.After = chats[len(chats)-1].ID
	}
	return c.JSON(out)
}

// taskChat runs change on the task with the id of the route and answers
// the task.
func (s *Server) taskChange(c *fiber.Ctx, change func(ch *engine.Chat, t *engine.Task) (string, error)) error {
	id := c.Params("id")
	chatID, _, ok := splitTaskID(id)
	if !ok {
		return notFound("task", id)
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	var item *taskItem
	_, err := s.changeChat(ctx, chatID, false, func(ch *engine.Chat) ([]store.Event, error) {
		if ch.Task == nil || ch.Task.ID != id {
			return nil, notFound("task", id)
		}
		task := *ch.Task
		task.Data = maps.Clone(task.Data)
		ev, err := change(ch, &task)
		if err != nil {
			return nil, err
		}
		if ev == evTaskDeleted {
			ch.Task = nil
			return []store.Event{store.NewEvent(ev, ch.ID, taskData(ch, &task))}, nil
		}
		task.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		ch.Task = &task
		it := taskItemOf(ch)
		item = &it
		return []store.Event{store.NewEvent(ev, ch.ID, taskData(ch, &task))}, nil
	})
	var e *Error
	if errors.As(err, &e) && e.Code == "chat_not_found" {
		return notFound("task", id)
	}
	if err != nil {
		return err
	}
	if item == nil {
		return c.JSON(fiber.Map{"id": id, "deleted": true})
	}
	return c.JSON(item)
}

type patchTaskRequest struct {
	Data     map[string]any `json:"data"`
	Assignee *string        `json:"assignee"`
}

// patchTask: PATCH /v1/tasks/:id merges data (a null removes a key) and
// sets the assignee.
func (s *Server) patchTask(c *fiber.Ctx) error {
	var req patchTaskRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	if req.Assignee != nil {
		if err := checkLen("assignee", *req.Assignee, maxAssigneeLn); err != nil {
			return err
		}
	}
	return s.taskChange(c, func(_ *engine.Chat, t *engine.Task) (string, error) {
		if t.Data == nil {
			t.Data = map[string]any{}
		}
		for k, v := range req.Data {
			if v == nil {
				delete(t.Data, k)
			} else {
				t.Data[k] = v
			}
		}
		if n := engine.JSONSize(t.Data); n > s.maxAttrs {
			return "", newError(http.StatusRequestEntityTooLarge, "attributes_too_large", "task data would be %d bytes, over the limit of %d", n, s.maxAttrs)
		}
		if req.Assignee != nil {
			t.Assignee = *req.Assignee
		}
		return evTaskUpdated, nil
	})
}

// completeTask: POST /v1/tasks/:id/complete. The chat stays with the human
// until it is resumed.
func (s *Server) completeTask(c *fiber.Ctx) error {
	return s.taskChange(c, func(_ *engine.Chat, t *engine.Task) (string, error) {
		if t.Status == engine.TaskCompleted {
			return "", newError(http.StatusConflict, "task_completed", "task %s is already completed", t.ID)
		}
		t.Status = engine.TaskCompleted
		return evTaskCompleted, nil
	})
}

// deleteTask: DELETE /v1/tasks/:id.
func (s *Server) deleteTask(c *fiber.Ctx) error {
	return s.taskChange(c, func(*engine.Chat, *engine.Task) (string, error) { return evTaskDeleted, nil })
}
