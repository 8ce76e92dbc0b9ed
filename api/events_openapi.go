package api

import (
	"github.com/storyflow/storyflow/store"
)

// The OpenAPI operations of the event webhook, task, hand-off and contact
// routes (openapi.go).

type agentMessageAnswer struct {
	ChatID string `json:"chatId"`
	Seq    int64  `json:"seq"`
	Status string `json:"status"`
}

type erasedAnswer struct {
	UserID     string `json:"userId"`
	Chats      int    `json:"chats"`
	Entries    int    `json:"entries"`
	Deliveries int    `json:"deliveries"`
}

type testEventAnswer struct {
	Event      string `json:"event"`
	Success    bool   `json:"success"`
	Status     int    `json:"status"`
	Error      string `json:"error"`
	DurationMS int64  `json:"durationMs"`
}

func init() {
	document(
		operation{Method: "POST", Path: "/v1/chats/:chatId/agent-messages", Tag: "handoff", Summary: "A human agent's reply to a chat in handoff",
			Request: agentMessageRequest{}, Example: map[string]any{"text": "Hi, this is Ann from support.", "agent": "ann"},
			Responses: []answer{{Status: 201, Body: agentMessageAnswer{}}}, Errors: []int{400, 404, 409, 413}},
		operation{Method: "POST", Path: "/v1/chats/:chatId/resume", Tag: "handoff", Summary: "Give a chat in handoff back to the bot (its task completes, a turn runs)",
			Request: resumeRequest{}, Example: map[string]any{"node": "start"},
			Responses: ok200(turnAnswer{}), Errors: []int{400, 404, 409, 413}},
		operation{Method: "GET", Path: "/v1/tasks", Tag: "handoff", Summary: "List hand-off tasks", Query: []string{"status", "storyId", "limit", "after"},
			Responses: ok200([]taskItem{}), Errors: []int{400}},
		operation{Method: "PATCH", Path: "/v1/tasks/:id", Tag: "handoff", Summary: "Merge a task's data (null removes a key), set its assignee",
			Request: patchTaskRequest{}, Example: map[string]any{"data": map[string]any{"priority": "high"}, "assignee": "ann"},
			Responses: ok200(taskItem{}), Errors: []int{400, 404, 409, 413}},
		operation{Method: "POST", Path: "/v1/tasks/:id/complete", Tag: "handoff", Summary: "Complete a task (the chat stays in handoff until resumed)",
			Responses: ok200(taskItem{}), Errors: []int{404, 409}},
		operation{Method: "DELETE", Path: "/v1/tasks/:id", Tag: "handoff", Summary: "Delete a task", Responses: ok200(deletedAnswer{}), Errors: []int{404}},

		operation{Method: "GET", Path: "/v1/contacts/:userId", Tag: "contacts", Summary: "A user's userAttributes and chats",
			Responses: ok200(contact{}), Errors: []int{400, 404}},
		operation{Method: "PUT", Path: "/v1/contacts/:userId", Tag: "contacts", Summary: "Replace a user's userAttributes in each of their chats",
			Request: putContactRequest{}, Example: map[string]any{"userAttributes": map[string]any{"default_name": "Ann"}},
			Responses: ok200(contact{}), Errors: []int{400, 404, 413}},
		operation{Method: "DELETE", Path: "/v1/contacts/:userId", Tag: "contacts", Summary: "Erase a user's personal data from their chats and their events' stored deliveries",
			Responses: ok200(erasedAnswer{}), Errors: []int{400, 404}},

		operation{Method: "POST", Path: "/v1/event-webhooks", Tag: "events", Summary: "Subscribe a URL to events",
			Request: subscriptionRequest{}, Example: map[string]any{"url": "https://crm.example.com/events", "events": []string{"conversation.started", "handoff.requested"}, "secret": "a-long-random-secret"},
			Responses: []answer{{Status: 201, Body: subscriptionItem{}}}, Errors: []int{400, 413, 501}},
		operation{Method: "GET", Path: "/v1/event-webhooks", Tag: "events", Summary: "List event subscriptions", Responses: ok200([]subscriptionItem{}), Errors: []int{501}},
		operation{Method: "GET", Path: "/v1/event-webhooks/:id", Tag: "events", Summary: "Get an event subscription", Responses: ok200(subscriptionItem{}), Errors: []int{404, 501}},
		operation{Method: "DELETE", Path: "/v1/event-webhooks/:id", Tag: "events", Summary: "Delete an event subscription and its deliveries",
			Responses: ok200(deletedAnswer{}), Errors: []int{404, 501}},
		operation{Method: "GET", Path: "/v1/event-webhooks/:id/deliveries", Tag: "events", Summary: "A subscription's deliveries, newest first",
			Query: []string{"status", "limit"}, Responses: ok200([]store.Delivery{}), Errors: []int{400, 404, 501}},
		operation{Method: "POST", Path: "/v1/event-webhooks/:id/deliveries/:deliveryId/replay", Tag: "events", Summary: "Deliver a failed delivery again",
			Responses: []answer{{Status: 202, Body: store.Delivery{}}}, Errors: []int{404, 409, 501}},
		operation{Method: "POST", Path: "/v1/event-webhooks/:id/test", Tag: "events", Summary: "Send a test event to the subscription's URL now",
			Responses: ok200(testEventAnswer{}), Errors: []int{404, 501}},
	)
}
