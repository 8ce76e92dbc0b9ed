package engine

import "time"

// TaskStatus is the state of a hand-off task.
type TaskStatus string

// Task statuses.
const (
	TaskOpen      TaskStatus = "open"
	TaskCompleted TaskStatus = "completed"
)

// Task is the work a handoff node leaves for a human. A chat keeps its
// latest task; the server numbers tasks per chat.
type Task struct {
	ID        string         `json:"id" bson:"id"`
	Status    TaskStatus     `json:"status" bson:"status"`
	Data      map[string]any `json:"data" bson:"data"`
	Assignee  string         `json:"assignee,omitempty" bson:"assignee,omitempty"`
	CreatedAt time.Time      `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time      `json:"updatedAt" bson:"updatedAt"`
}

// Append adds e to the transcript as the chat's next entry (a human
// agent's reply, for instance) and sets its Seq.
func (c *Chat) Append(e Entry) {
	c.addEntry(e)
	c.trimTranscript(c.Seq)
}
