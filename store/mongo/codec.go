package mongo

import (
	"fmt"
	"reflect"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/storyflow/storyflow/engine"
)

// The documents engine values are stored as: the engine knows no storage
// encoding, so the BSON field names live here. registry converts each
// engine type to and from its document (a chat's transcript entries and
// task go through their own codecs).

type chatDoc struct {
	ID             string                         `bson:"_id"`
	StoryID        string                         `bson:"storyId"`
	StoryVersion   int                            `bson:"storyVersion"`
	Node           string                         `bson:"node"`
	Status         engine.Status                  `bson:"status"`
	UserID         string                         `bson:"userId"`
	ExternalID     string                         `bson:"externalId,omitempty"`
	Attributes     map[string]any                 `bson:"attributes"`
	UserAttributes map[string]any                 `bson:"userAttributes"`
	Transcript     []engine.Entry                 `bson:"transcript"`
	Seq            int64                          `bson:"seq"`
	Error          string                         `bson:"error,omitempty"`
	Task           *engine.Task                   `bson:"task,omitempty"`
	Waiting        bool                           `bson:"waiting"`
	CreatedAt      time.Time                      `bson:"createdAt"`
	UpdatedAt      time.Time                      `bson:"updatedAt"`
	Rev            int64                          `bson:"rev"`
	Earlier        func() ([]engine.Entry, error) `bson:"-"`
}

type entryDoc struct {
	Seq      int64            `bson:"seq"`
	From     string           `bson:"from"`
	Node     string           `bson:"node,omitempty"`
	Input    *engine.Input    `bson:"input,omitempty"`
	Response *engine.Response `bson:"response,omitempty"`
	Call     *engine.Call     `bson:"call,omitempty"`
	Data     map[string]any   `bson:"data,omitempty"`
	Steps    []engine.Step    `bson:"steps,omitempty"`
	Time     time.Time        `bson:"time"`
}

type callDoc struct {
	Format       string         `bson:"format"`
	Model        string         `bson:"model,omitempty"`
	StopReason   string         `bson:"stopReason,omitempty"`
	InputTokens  int64          `bson:"inputTokens"`
	OutputTokens int64          `bson:"outputTokens"`
	Metadata     map[string]any `bson:"metadata,omitempty"`
}

type taskDoc struct {
	ID        string            `bson:"id"`
	Status    engine.TaskStatus `bson:"status"`
	Data      map[string]any    `bson:"data"`
	Assignee  string            `bson:"assignee,omitempty"`
	CreatedAt time.Time         `bson:"createdAt"`
	UpdatedAt time.Time         `bson:"updatedAt"`
}

type stepDoc struct {
	Node  string `bson:"node"`
	Next  string `bson:"next,omitempty"`
	Route int    `bson:"route,omitempty"`
	End   string `bson:"end,omitempty"`
	Error string `bson:"error,omitempty"`
}

// The documents have the engine types' fields in the same order, so each
// converts with a type conversion (a field added to one and not the other
// does not compile).
var (
	_ = engine.Chat(chatDoc{})
	_ = engine.Entry(entryDoc{})
	_ = engine.Call(callDoc{})
	_ = engine.Task(taskDoc{})
	_ = engine.Step(stepDoc{})
)

// registry encodes the engine's types as their documents; the client and
// the revision encoder and decoder use it.
var registry = newRegistry()

func newRegistry() *bson.Registry {
	r := bson.NewRegistry()
	as[engine.Chat, chatDoc](r)
	as[engine.Entry, entryDoc](r)
	as[engine.Call, callDoc](r)
	as[engine.Task, taskDoc](r)
	as[engine.Step, stepDoc](r)
	return r
}

// as registers a codec that stores engine type E as document D, a struct
// with the same fields (and BSON tags).
func as[E, D any](r *bson.Registry) {
	et, dt := reflect.TypeFor[E](), reflect.TypeFor[D]()
	if !dt.ConvertibleTo(et) || !et.ConvertibleTo(dt) {
		panic(fmt.Sprintf("mongo: %v does not convert to %v", dt, et))
	}
	r.RegisterTypeEncoder(et, bson.ValueEncoderFunc(func(ec bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		enc, err := ec.LookupEncoder(dt)
		if err != nil {
			return err
		}
		return enc.EncodeValue(ec, vw, v.Convert(dt))
	}))
	r.RegisterTypeDecoder(et, bson.ValueDecoderFunc(func(dc bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
		dec, err := dc.LookupDecoder(dt)
		if err != nil {
			return err
		}
		d := reflect.New(dt).Elem()
		if err := dec.DecodeValue(dc, vr, d); err != nil {
			return err
		}
		v.Set(d.Convert(et))
		return nil
	}))
}
