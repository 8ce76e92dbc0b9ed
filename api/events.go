package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/events"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/webhook"
)

// Event names the server publishes (SPEC §6); emit nodes add their own.
const (
	evConversationCreated   = "conversation.created"
	evConversationUpdated   = "conversation.updated"
	evConversationCompleted = "conversation.completed"
	evContactCreated        = "contact.created"
	evContactUpdated        = "contact.updated"
	evContactDeleted        = "contact.deleted"
	evTaskCreated           = "task.created"
	evTaskUpdated           = "task.updated"
	evTaskCompleted         = "task.completed"
	evTaskDeleted           = "task.deleted"
)

// Limits of subscriptions.
const (
	maxEventNames     = 64
	maxSecretLen      = 1024
	maxDeliveriesPage = 1000
)

var eventNameRe = regexp.MustCompile(`^([a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+|\*)$`)

// errNoOutbox: the store keeps no events.
var errNoOutbox = newError(http.StatusNotImplemented, "events_unsupported", "this store keeps no events; use the default embedded store or MongoDB")

func (s *Server) outboxStore() (store.Outbox, error) {
	if s.outbox == nil {
		return nil, errNoOutbox
	}
	return s.outbox, nil
}

// chatData is the data of conversation events.
func chatData(c *engine.Chat) map[string]any {
	d := map[string]any{
		"chatId": c.ID, "storyId": c.StoryID, "storyVersion": c.StoryVersion, "userId": c.UserID,
		"status": string(c.Status), "node": c.Node, "attributes": c.Attributes, "userAttributes": c.UserAttributes,
	}
	if c.ExternalID != "" {
		d["externalId"] = c.ExternalID
	}
	return d
}

// taskData is the data of task events.
func taskData(c *engine.Chat, t *engine.Task) map[string]any {
	d := map[string]any{
		"taskId": t.ID, "chatId": c.ID, "storyId": c.StoryID, "userId": c.UserID,
		"status": string(t.Status), "data": t.Data,
	}
	if t.Assignee != "" {
		d["assignee"] = t.Assignee
	}
	return d
}

// turnEvents returns the events of a turn that changed chat c (created:
// its first turn): the emit nodes', the hand-off task's and the
// conversation's, those of them that want wants (the others are not even
// built). A hand-off becomes the chat's task here, wanted or not.
func turnEvents(c *engine.Chat, t *engine.Turn, created bool, before engine.Status, want func(name string) bool) []store.Event {
	var evs []store.Event
	if created && want(evConversationCreated) {
		evs = append(evs, store.NewEvent(evConversationCreated, c.ID, chatData(c)))
	}
	for _, e := range t.Events {
		if !want(e.Name) {
			continue
		}
		data := e.Data
		if data == nil {
			data = map[string]any{}
		}
		if _, ok := data["chatId"]; !ok {
			data["chatId"] = c.ID
		}
		evs = append(evs, store.NewEvent(e.Name, c.ID, data))
	}
	if t.Task != nil {
		now := time.Now().UTC().Truncate(time.Millisecond)
		n := 1
		if c.Task != nil {
			if _, k, ok := splitTaskID(c.Task.ID); ok {
				n = k + 1
			}
		}
		c.Task = &engine.Task{ID: c.ID + "_" + strconv.Itoa(n), Status: engine.TaskOpen, Data: t.Task, CreatedAt: now, UpdatedAt: now}
		if want(evTaskCreated) {
			evs = append(evs, store.NewEvent(evTaskCreated, c.ID, taskData(c, c.Task)))
		}
	}
	if !created && want(evConversationUpdated) {
		evs = append(evs, store.NewEvent(evConversationUpdated, c.ID, chatData(c)))
	}
	if c.Status == engine.StatusCompleted && before != engine.StatusCompleted && want(evConversationCompleted) {
		evs = append(evs, store.NewEvent(evConversationCompleted, c.ID, chatData(c)))
	}
	return evs
}

// splitTaskID splits "<chatId>_<n>".
func splitTaskID(id string) (chatID string, n int, ok bool) {
	i := strings.LastIndexByte(id, '_')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return id[:i], n, true
}

// createChatRecord stores a new chat with its events.
func (s *Server) createChatRecord(ctx context.Context, c *engine.Chat, evs []store.Event) error {
	if s.outbox == nil {
		return s.st.CreateChat(ctx, c)
	}
	evs = s.subscribers.wanted(ctx, s.outbox, evs)
	if err := s.outbox.CreateChatEvents(ctx, c, evs); err != nil {
		return err
	}
	if len(evs) > 0 {
		s.notify()
	}
	return nil
}

// updateChatRecord stores a chat update with its events.
func (s *Server) updateChatRecord(ctx context.Context, c *engine.Chat, reply *store.Reply, evs []store.Event) error {
	if s.outbox == nil {
		return s.st.UpdateChat(ctx, c, reply)
	}
	evs = s.subscribers.wanted(ctx, s.outbox, evs)
	if err := s.outbox.UpdateChatEvents(ctx, c, reply, evs); err != nil {
		return err
	}
	if len(evs) > 0 {
		s.notify()
	}
	return nil
}

func (s *Server) notify() {
	if s.events != nil {
		s.events.Notify()
	}
}

// Event webhooks: /v1/event-webhooks.

type subscriptionRequest struct {
	URL     *string           `json:"url"`
	Events  []string          `json:"events"`
	Headers map[string]string `json:"headers"`
	Secret  *string           `json:"secret"`
}

// subscriptionItem is a subscription as the API shows it: the secret is
// never shown, only whether there is one.
type subscriptionItem struct {
	ID        string            `json:"id"`
	URL       string            `json:"url"`
	Events    []string          `json:"events"`
	Headers   map[string]string `json:"headers,omitempty"`
	Signed    bool              `json:"signed"`
	CreatedAt time.Time         `json:"createdAt"`
}

func subscriptionItemOf(sub *store.Subscription) subscriptionItem {
	return subscriptionItem{ID: sub.ID, URL: sub.URL, Events: sub.Events, Headers: sub.Headers, Signed: sub.Secret != "", CreatedAt: sub.CreatedAt}
}

func (s *Server) subscription(r *subscriptionRequest) (store.Subscription, error) {
	var sub store.Subscription
	if r.URL == nil {
		return sub, badRequest("field url is required")
	}
	if len(r.Events) == 0 {
		return sub, badRequest("field events must list at least one event name (or \"*\")")
	}
	if len(r.Events) > maxEventNames {
		return sub, badRequest("field events must list at most %d names, got %d", maxEventNames, len(r.Events))
	}
	for _, e := range r.Events {
		if len(e) > 128 || !eventNameRe.MatchString(e) {
			return sub, badRequest("event name %q must be dotted lower case, like order.requested, or \"*\"", truncate(e, 64))
		}
	}
	wc := webhook.Connection{URL: *r.URL, Headers: r.Headers}
	if ps := wc.Check(); len(ps) > 0 {
		p := ps[0]
		if field, name, ok := strings.Cut(p.Path, "."); ok && field == "headers" {
			return sub, badRequest("header %s: %s", name, p.Message)
		}
		return sub, badRequest("field %s %s", p.Path, p.Message)
	}
	if !s.allowPrivate {
		u, _ := url.Parse(*r.URL)
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil {
			if kind, refused := webhook.Refused(ip); refused {
				return sub, newError(http.StatusBadRequest, "address_refused", "field url: %s is %s address (serve --allow-private-webhooks allows it)", ip, kind)
			}
		} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
			return sub, newError(http.StatusBadRequest, "address_refused", "field url: %s is a loopback name (serve --allow-private-webhooks allows it)", host)
		}
	}
	if r.Secret != nil {
		if n := utf8.RuneCountInString(*r.Secret); n < 1 || n > maxSecretLen {
			return sub, badRequest("field secret must be 1 to %d characters, got %d", maxSecretLen, n)
		}
		sub.Secret = *r.Secret
	}
	sub.URL, sub.Events, sub.Headers = *r.URL, r.Events, r.Headers
	return sub, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// createSubscription: POST /v1/event-webhooks.
func (s *Server) createSubscription(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	var req subscriptionRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	sub, err := s.subscription(&req)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	if err := ob.CreateSubscription(ctx, &sub); err != nil {
		return fmt.Errorf("create event webhook: %w", err)
	}
	s.subscribers.forget()
	return c.Status(http.StatusCreated).JSON(subscriptionItemOf(&sub))
}

// listSubscriptions: GET /v1/event-webhooks.
func (s *Server) listSubscriptions(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	subs, err := ob.ListSubscriptions(ctx)
	if err != nil {
		return fmt.Errorf("list event webhooks: %w", err)
	}
	out := make([]subscriptionItem, 0, len(subs))
	for i := range subs {
		out = append(out, subscriptionItemOf(&subs[i]))
	}
	return c.JSON(out)
}

func (s *Server) getSub(ctx context.Context, ob store.Outbox, id string) (store.Subscription, error) {
	sub, err := ob.GetSubscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return sub, notFound("event webhook", id)
	}
	if err != nil {
		return sub, fmt.Errorf("get event webhook: %w", err)
	}
	return sub, nil
}

// getSubscription: GET /v1/event-webhooks/:id.
func (s *Server) getSubscription(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	sub, err := s.getSub(ctx, ob, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(subscriptionItemOf(&sub))
}

// deleteSubscription: DELETE /v1/event-webhooks/:id (its deliveries too).
func (s *Server) deleteSubscription(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	id := c.Params("id")
	if _, err := s.getSub(ctx, ob, id); err != nil {
		return err
	}
	if err := ob.DeleteSubscription(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("event webhook", id)
		}
		return fmt.Errorf("delete event webhook: %w", err)
	}
	s.subscribers.forget()
	return c.JSON(fiber.Map{"id": id, "deleted": true})
}

// listDeliveries: GET /v1/event-webhooks/:id/deliveries?status=&limit=.
func (s *Server) listDeliveries(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeliveriesPage {
			return badRequest("limit must be 1 to %d, got %q", maxDeliveriesPage, v)
		}
		limit = n
	}
	status := store.DeliveryStatus(c.Query("status"))
	switch status {
	case "", store.DeliveryPending, store.DeliverySucceeded, store.DeliveryFailed:
	default:
		return badRequest("status %q unknown (want pending, succeeded or failed)", status)
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	id := c.Params("id")
	if _, err := s.getSub(ctx, ob, id); err != nil {
		return err
	}
	ds, err := ob.ListDeliveries(ctx, id, maxDeliveriesPage)
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	out := make([]store.Delivery, 0, min(limit, len(ds)))
	for _, d := range ds {
		if status == "" || d.Status == status {
			out = append(out, d)
		}
		if len(out) == limit {
			break
		}
	}
	return c.JSON(out)
}

// replayDelivery: POST /v1/event-webhooks/:id/deliveries/:deliveryId/replay
// makes a delivery pending again, due now, with a fresh set of retries.
func (s *Server) replayDelivery(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	id, did := c.Params("id"), c.Params("deliveryId")
	if _, err := s.getSub(ctx, ob, id); err != nil {
		return err
	}
	d, err := ob.GetDelivery(ctx, did)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.SubscriptionID != id) {
		return notFound("delivery", did)
	}
	if err != nil {
		return fmt.Errorf("replay delivery: %w", err)
	}
	if d.Status == store.DeliveryPending {
		return newError(http.StatusConflict, "delivery_pending", "delivery %q is pending; it is tried again by itself", did)
	}
	d.Status, d.NextAt = store.DeliveryPending, time.Now().UTC()
	if err := ob.SaveDelivery(ctx, "", &d); err != nil {
		return fmt.Errorf("replay delivery: %w", err)
	}
	s.notify()
	return c.Status(http.StatusAccepted).JSON(d)
}

// testSubscription: POST /v1/event-webhooks/:id/test sends a sample event
// once, now, and answers how it went (nothing is stored).
func (s *Server) testSubscription(c *fiber.Ctx) error {
	ob, err := s.outboxStore()
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	sub, err := s.getSub(ctx, ob, c.Params("id"))
	if err != nil {
		return err
	}
	name := "webhook.test"
	if len(sub.Events) > 0 && sub.Events[0] != "*" {
		name = sub.Events[0]
	}
	ev := store.NewEvent(name, "", map[string]any{"test": true})
	w := s.events
	if w == nil {
		w = events.New(events.Options{Store: ob, HTTP: s.client.HTTP(), Logger: s.log})
	}
	a := w.Send(ctx, &sub, &ev)
	return c.JSON(fiber.Map{"event": ev.ID, "success": a.Error == "", "status": a.Status, "error": a.Error, "durationMs": a.DurationMS})
}
