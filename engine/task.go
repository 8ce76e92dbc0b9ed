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
	ID        string         `json:"id"`
	Status    TaskStatus     `json:"status"`
	Data      map[string]any `json:"data"`
	Assignee  string         `json:"assignee,omitempty"`
	CreatedAt time.Time      `json:"createdAt"`
	UpdatedAt time.Time      `json:"updatedAt"`
}

// Append adds e to the transcript as the chat's next entry (a human
// agent's reply, for instance) and sets its Seq.
func (c *Chat) Append(e Entry) {
	c.addEntry(e)
	c.trimTranscript(c.Seq)
}
