package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// failNode fails every time it runs.
type failNode struct{}

func (failNode) Run(context.Context, *engine.Turn) (engine.Result, error) {
	return engine.Result{}, errors.New("boom")
}

// registry returns the built-in node types plus "fail".
func registry() *engine.Registry {
	r := nodes.NewRegistry(nodes.Options{})
	r.MustRegister(engine.Spec{Type: "fail", Summary: "fails"}, func(*engine.Config) (engine.Node, error) {
		return failNode{}, nil
	})
	return r
}

func load(t testing.TB, src string) *engine.Story {
	t.Helper()
	s, _, err := stories.Load("test.yaml", []byte(src), stories.Options{Registry: registry()})
	if err != nil {
		t.Fatalf("load story: %v", err)
	}
	return s
}

func quietRunner() *engine.Runner {
	return &engine.Runner{Logger: slog.New(slog.DiscardHandler)}
}

func start(t *testing.T, r *engine.Runner, s *engine.Story) (*engine.Chat, *engine.Turn) {
	t.Helper()
	c := engine.NewChat(s, "c1", "u1", "", map[string]any{"name": "Ann"}, nil)
	turn, err := r.Start(context.Background(), s, c)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return c, turn
}

func send(t *testing.T, r *engine.Runner, s *engine.Story, c *engine.Chat, in engine.Input) *engine.Turn {
	t.Helper()
	turn, err := r.Send(context.Background(), s, c, in)
	if err != nil {
		t.Fatalf("send %+v: %v", in, err)
	}
	return turn
}

func messages(turn *engine.Turn) []string {
	var out []string
	for _, r := range turn.Output {
		out = append(out, r.Message)
	}
	return out
}

func text(id, msg, next string) string {
	s := fmt.Sprintf("  %s:\n    type: message\n    responses:\n      - type: text\n        message: %q\n", id, msg)
	if next != "" {
		s += "    next: " + next + "\n"
	}
	return s
}

const loopStory = `id: loop
start: a
nodes:
` + `  a:
    type: message
    responses: [{type: text, message: A}]
    next: b
  b:
    type: message
    responses: [{type: text, message: B}]
    next: a
`

func TestStepLimit(t *testing.T) {
	s := load(t, loopStory)
	tests := []struct {
		name     string
		max      int
		wantRuns int
		wantLoop string
	}{
		{"default 100", 0, 100, "loop a -> b -> a"},
		{"configured 7", 7, 7, "loop b -> a -> b"},
		{"configured 2", 2, 2, "loop a -> b -> a"},
		{"configured 1", 1, 1, "no loop: a -> b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := quietRunner()
			r.MaxSteps = tt.max
			c, turn := start(t, r, s)
			if c.Status != engine.StatusFailed {
				t.Fatalf("status = %s, want failed", c.Status)
			}
			if len(turn.Output) != tt.wantRuns {
				t.Errorf("%d responses sent, want %d (one a node)", len(turn.Output), tt.wantRuns)
			}
			if !strings.Contains(c.Error, fmt.Sprintf("more than %d nodes", tt.wantRuns)) {
				t.Errorf("error %q does not name the limit %d", c.Error, tt.wantRuns)
			}
			if !strings.HasSuffix(c.Error, ": "+tt.wantLoop) {
				t.Errorf("error %q does not end in %q", c.Error, tt.wantLoop)
			}
			if _, err := r.Send(context.Background(), s, c, engine.Input{Text: "hi"}); !errors.Is(err, engine.ErrChatClosed) {
				t.Errorf("send to a failed chat: %v, want ErrChatClosed", err)
			}
		})
	}
}

func TestStepLimitSetConditionLoop(t *testing.T) {
	s := load(t, `id: count
start: count
attributes: {n: 0}
nodes:
  count:
    type: set
    attributes: {n: "{{ attributes.n + 1 }}"}
    next: check
  check:
    type: condition
    routes:
      - when: attributes.n < 1000
        next: count
    else: done
  done:
    type: end
`)
	r := quietRunner()
	c, _ := start(t, r, s)
	if c.Status != engine.StatusFailed || !strings.Contains(c.Error, "loop count -> check -> count") {
		t.Fatalf("status %s, error %q; want failed naming the loop", c.Status, c.Error)
	}
	if c.Attributes["n"] != 50 {
		t.Errorf("n = %v, want 50 (100 nodes, two a round)", c.Attributes["n"])
	}
	r.MaxSteps = 3000
	c, _ = start(t, r, s)
	if c.Status != engine.StatusCompleted || c.Attributes["n"] != 1000 {
		t.Errorf("with MaxSteps 3000: status %s, n = %v; want completed, 1000", c.Status, c.Attributes["n"])
	}
}

// chain returns a story of n message nodes in a row.
func chain(n int) string {
	var b strings.Builder
	b.WriteString("id: chain\nstart: n1\nnodes:\n")
	for i := 1; i <= n; i++ {
		next := ""
		if i < n {
			next = fmt.Sprintf("n%d", i+1)
		}
		b.WriteString(text(fmt.Sprintf("n%d", i), fmt.Sprint(i), next))
	}
	return b.String()
}

func TestStepLimitBoundary(t *testing.T) {
	r := quietRunner()
	c, turn := start(t, r, load(t, chain(100)))
	if c.Status != engine.StatusCompleted || len(turn.Output) != 100 {
		t.Errorf("100 nodes: status %s, %d responses; want completed, 100", c.Status, len(turn.Output))
	}
	c, turn = start(t, r, load(t, chain(101)))
	if c.Status != engine.StatusFailed || len(turn.Output) != 100 {
		t.Errorf("101 nodes: status %s, %d responses; want failed, 100", c.Status, len(turn.Output))
	}
	if want := "turn ran more than 100 nodes: no loop, ends ... -> n92 -> n93 -> n94 -> n95 -> n96 -> n97 -> n98 -> n99 -> n100 -> n101"; c.Node != "n101" || c.Error != want {
		t.Errorf("101 nodes: node %s, error %q; want n101 and %q", c.Node, c.Error, want)
	}
	// More nodes than a turn's trace keeps (200): the error names the
	// last ones all the same.
	r.MaxSteps = 300
	c, _ = start(t, r, load(t, chain(301)))
	if want := "turn ran more than 300 nodes: no loop, ends ... -> n292 -> n293 -> n294 -> n295 -> n296 -> n297 -> n298 -> n299 -> n300 -> n301"; c.Node != "n301" || c.Error != want {
		t.Errorf("301 nodes, MaxSteps 300: node %s, error %q; want n301 and %q", c.Node, c.Error, want)
	}
}

const errorStory = `id: errs
start: ask
onError: sorry
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Ready?"}]
    next: boom
  boom:
    type: fail
  sorry:
    type: message
    responses: [{type: text, message: "Sorry {{ userAttributes.name }}"}]
    next: again
  again:
    type: question
    responses: [{type: text, message: "Try again?"}]
    next: boom
`

func TestOnError(t *testing.T) {
	s := load(t, errorStory)
	r := quietRunner()
	c, _ := start(t, r, s)
	turn := send(t, r, s, c, engine.Input{Text: "yes"})
	if got := messages(turn); !slices.Equal(got, []string{"Sorry Ann", "Try again?"}) {
		t.Errorf("responses = %q, want the onError branch", got)
	}
	if c.Node != "again" || !c.Waiting || c.Status != engine.StatusActive {
		t.Errorf("chat at %s waiting %v status %s; want waiting at again", c.Node, c.Waiting, c.Status)
	}
	if !strings.Contains(c.Error, `node "boom" (fail): boom`) {
		t.Errorf("chat error = %q", c.Error)
	}
}

func TestOnErrorFailing(t *testing.T) {
	// The onError node fails itself: the built-in apology, not a loop.
	s := load(t, `id: errs
start: ask
onError: boom
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Ready?"}]
    next: boom
  boom:
    type: fail
`)
	r := quietRunner()
	c, _ := start(t, r, s)
	turn := send(t, r, s, c, engine.Input{Text: "yes"})
	if got := messages(turn); !slices.Equal(got, []string{engine.DefaultApology}) {
		t.Errorf("responses = %q, want the apology", got)
	}
}

func TestApology(t *testing.T) {
	s := load(t, strings.Replace(errorStory, "onError: sorry\n", "", 1))
	tests := []struct {
		name, apology, want string
	}{
		{"default", "", engine.DefaultApology},
		{"configured", "Oops.", "Oops."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := quietRunner()
			r.Apology = tt.apology
			c, _ := start(t, r, s)
			turn := send(t, r, s, c, engine.Input{Text: "yes"})
			if got := messages(turn); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("responses = %q, want the apology", got)
			}
			if c.Node != "ask" || !c.Waiting || c.Status != engine.StatusActive {
				t.Errorf("chat at %s waiting %v status %s; want waiting at ask where it was", c.Node, c.Waiting, c.Status)
			}
			// The chat goes on from where it waited.
			turn = send(t, r, s, c, engine.Input{Text: "again"})
			if got := messages(turn); !slices.Equal(got, []string{tt.want}) || c.Node != "ask" {
				t.Errorf("second input: responses %q at %s", got, c.Node)
			}
		})
	}
}

func TestApologyOnValidatorError(t *testing.T) {
	s := load(t, `id: v
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "How many?"}]
    validate: int(input) > 0
    save: n
    next: done
  done:
    type: end
    responses: [{type: text, message: Thanks}]
`)
	r := quietRunner()
	c, _ := start(t, r, s)
	turn := send(t, r, s, c, engine.Input{Text: "many"})
	if got := messages(turn); !slices.Equal(got, []string{engine.DefaultApology}) || c.Node != "ask" || !c.Waiting {
		t.Fatalf("responses %q, node %s waiting %v; want apology, waiting at ask", got, c.Node, c.Waiting)
	}
	turn = send(t, r, s, c, engine.Input{Text: "3"})
	if got := messages(turn); !slices.Equal(got, []string{"Thanks"}) || c.Status != engine.StatusCompleted || c.Attributes["n"] != "3" {
		t.Errorf("responses %q, status %s, n %v", got, c.Status, c.Attributes["n"])
	}
}

const menuStory = `id: menu
start: menu
nodes:
  menu:
    type: question
    responses:
      - type: quickReplies
        title: Which plan?
        buttons:
          - {type: postback, title: Pro, value: pro}
          - {type: postback, title: Free, value: free}
          - {type: goto, title: Help, value: help}
    save: plan
    next: route
  route:
    type: condition
    routes:
      - when: input == "pro"
        next: pro
    else: other
  pro:
    type: end
    responses: [{type: text, message: "Pro it is ({{ attributes.plan }})"}]
  other:
    type: end
    responses: [{type: text, message: "You said {{ input }}"}]
  help:
    type: message
    responses: [{type: text, message: Help text}]
    next: menu
`

func TestPostbackIsInput(t *testing.T) {
	s := load(t, menuStory)
	r := quietRunner()
	c, turn := start(t, r, s)
	if len(turn.Output) != 1 || turn.Output[0].Type != "quickReplies" || !c.Waiting || c.Node != "menu" {
		t.Fatalf("start: %+v, waiting %v at %s", turn.Output, c.Waiting, c.Node)
	}
	turn = send(t, r, s, c, engine.Input{Text: "Pro", Postback: "pro"})
	if got := messages(turn); !slices.Equal(got, []string{"Pro it is (pro)"}) {
		t.Errorf("responses = %q", got)
	}
	if c.Status != engine.StatusCompleted {
		t.Errorf("status = %s, want completed", c.Status)
	}

	c, _ = start(t, r, s)
	turn = send(t, r, s, c, engine.Input{Text: "something else"})
	if got := messages(turn); !slices.Equal(got, []string{"You said something else"}) {
		t.Errorf("text input: responses = %q", got)
	}
}

func TestGotoInput(t *testing.T) {
	s := load(t, menuStory)
	r := quietRunner()
	c, _ := start(t, r, s)
	turn := send(t, r, s, c, engine.Input{Goto: "help"})
	if got := messages(turn); len(got) != 2 || got[0] != "Help text" || turn.Output[1].Title != "Which plan?" {
		t.Errorf("responses = %+v; want help, then the menu again", turn.Output)
	}
	if c.Node != "menu" || !c.Waiting {
		t.Errorf("chat at %s waiting %v, want waiting at menu", c.Node, c.Waiting)
	}
	if _, ok := c.Attributes["plan"]; ok {
		t.Errorf("a goto was saved as an answer: %v", c.Attributes)
	}
	if _, err := r.Send(context.Background(), s, c, engine.Input{Goto: "nowhere"}); !errors.Is(err, engine.ErrNoNode) {
		t.Errorf("goto to no node: %v, want ErrNoNode", err)
	}
	if _, err := r.Send(context.Background(), s, c, engine.Input{}); !errors.Is(err, engine.ErrEmptyInput) {
		t.Errorf("empty input: %v, want ErrEmptyInput", err)
	}
	if c.Node != "menu" || !c.Waiting {
		t.Errorf("rejected inputs moved the chat to %s (waiting %v)", c.Node, c.Waiting)
	}
}

func TestHandoffStopsReplies(t *testing.T) {
	s := load(t, `id: human
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "What is wrong?"}]
    save: issue
    next: human
  human:
    type: handoff
    responses: [{type: text, message: A human will answer.}]
    task:
      issue: "{{ attributes.issue }}"
      user: "{{ chat.userId }}"
`)
	r := quietRunner()
	c, _ := start(t, r, s)
	turn := send(t, r, s, c, engine.Input{Text: "printer on fire"})
	if c.Status != engine.StatusHandoff {
		t.Fatalf("status = %s, want handoff", c.Status)
	}
	if want := map[string]any{"issue": "printer on fire", "user": "u1"}; fmt.Sprint(turn.Task) != fmt.Sprint(want) {
		t.Errorf("task = %v, want %v", turn.Task, want)
	}
	before := len(c.Transcript)
	turn = send(t, r, s, c, engine.Input{Text: "hello?"})
	if len(turn.Output) != 0 || c.Status != engine.StatusHandoff {
		t.Errorf("bot replied during handoff: %+v (status %s)", turn.Output, c.Status)
	}
	if len(c.Transcript) != before+1 || c.Transcript[before].From != "user" || c.Transcript[before].Input.Text != "hello?" {
		t.Errorf("user input during handoff not kept in the transcript")
	}
}

func TestCompletedChatRejectsInput(t *testing.T) {
	s := load(t, `id: done
start: bye
nodes:
  bye:
    type: end
    responses: [{type: text, message: Bye}]
`)
	r := quietRunner()
	c, turn := start(t, r, s)
	if c.Status != engine.StatusCompleted || len(turn.Output) != 1 {
		t.Fatalf("status %s, %d responses", c.Status, len(turn.Output))
	}
	_, err := r.Send(context.Background(), s, c, engine.Input{Text: "hi"})
	if !errors.Is(err, engine.ErrChatClosed) {
		t.Errorf("send to a completed chat: %v, want ErrChatClosed", err)
	}
}

func TestMessageWithoutNextCompletes(t *testing.T) {
	s := load(t, "id: m\nstart: a\nnodes:\n"+text("a", "only", ""))
	c, _ := start(t, quietRunner(), s)
	if c.Status != engine.StatusCompleted {
		t.Errorf("status = %s, want completed", c.Status)
	}
}

func TestRandomText(t *testing.T) {
	for _, static := range []bool{true, false} {
		t.Run(fmt.Sprintf("static=%v", static), func(t *testing.T) {
			suffix := ""
			if !static {
				suffix = " {{ userAttributes.name }}"
			}
			var msgs []string
			for i := range 5 {
				msgs = append(msgs, fmt.Sprintf("%q", fmt.Sprintf("m%d%s", i, suffix)))
			}
			s := load(t, "id: r\nstart: a\nnodes:\n  a:\n    type: end\n    responses:\n      - type: randomText\n        messages: ["+strings.Join(msgs, ", ")+"]\n")
			seen := map[string]int{}
			for range 200 {
				_, turn := start(t, quietRunner(), s)
				if len(turn.Output) != 1 || turn.Output[0].Type != engine.TypeText || len(turn.Output[0].Messages) != 0 {
					t.Fatalf("randomText sent as %+v, want one text", turn.Output)
				}
				seen[turn.Output[0].Message]++
			}
			for m := range seen {
				if !strings.HasPrefix(m, "m") || (!static && !strings.HasSuffix(m, " Ann")) {
					t.Errorf("unexpected message %q", m)
				}
			}
			if len(seen) < 2 {
				t.Errorf("200 sends picked %v; want at least 2 distinct messages", seen)
			}
		})
	}
}

// recordSink keeps what is published.
type recordSink struct {
	chats  []*engine.Chat
	events [][]engine.Event
	err    error
}

func (s *recordSink) Publish(_ context.Context, c *engine.Chat, evs []engine.Event) error {
	s.chats = append(s.chats, c)
	s.events = append(s.events, slices.Clone(evs))
	return s.err
}

const orderStory = `id: orders
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "How many pizzas?"}]
    validate: number
    save: count
    next: order
  order:
    type: emit
    event: order.requested
    data:
      count: "{{ attributes.count }}"
      who: "{{ userAttributes.name }}"
      source: bot
    next: thanks
  thanks:
    type: emit
    event: order.thanked
    next: bye
  bye:
    type: end
    responses: [{type: text, message: "{{ attributes.count }} pizzas coming"}]
`

func TestEventsReachSink(t *testing.T) {
	s := load(t, orderStory)
	sink := &recordSink{}
	r := quietRunner()
	r.Sink = sink
	c, _ := start(t, r, s)
	if len(sink.events) != 0 {
		t.Fatalf("published %v on a turn with no events", sink.events)
	}
	turn := send(t, r, s, c, engine.Input{Text: "2"})
	if len(sink.events) != 1 || sink.chats[0] != c {
		t.Fatalf("published %d times, want once with the chat", len(sink.events))
	}
	evs := sink.events[0]
	if len(evs) != 2 || evs[0].Name != "order.requested" || evs[1].Name != "order.thanked" {
		t.Fatalf("events = %+v", evs)
	}
	if d := evs[0].Data; d["count"] != 2.0 || d["who"] != "Ann" || d["source"] != "bot" {
		t.Errorf("order data = %#v", d)
	}
	if len(evs[1].Data) != 0 {
		t.Errorf("event without data got %v", evs[1].Data)
	}
	if got := messages(turn); !slices.Equal(got, []string{"2 pizzas coming"}) {
		t.Errorf("responses = %q", got)
	}
}

func TestSinkErrorDoesNotFailTurn(t *testing.T) {
	s := load(t, orderStory)
	r := quietRunner()
	r.Sink = &recordSink{err: errors.New("down")}
	c, _ := start(t, r, s)
	send(t, r, s, c, engine.Input{Text: "1"})
	if c.Status != engine.StatusCompleted {
		t.Errorf("status = %s, want completed", c.Status)
	}
}

func TestTranscript(t *testing.T) {
	s := load(t, menuStory)
	r := quietRunner()
	c, _ := start(t, r, s)
	send(t, r, s, c, engine.Input{Text: "Free", Postback: "free"})
	var got []string
	for _, e := range c.Transcript {
		switch e.From {
		case "user":
			got = append(got, "user@"+e.Node+":"+e.Input.Postback)
		case "bot":
			got = append(got, "bot@"+e.Node+":"+e.Response.Type)
		}
	}
	want := []string{"bot@menu:quickReplies", "user@menu:free", "bot@other:text"}
	if !slices.Equal(got, want) {
		t.Errorf("transcript = %q, want %q", got, want)
	}
}

func TestCanceledContext(t *testing.T) {
	s := load(t, menuStory)
	c := engine.NewChat(s, "c", "", "", nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := quietRunner().Start(ctx, s, c); !errors.Is(err, context.Canceled) {
		t.Errorf("start with a canceled context: %v", err)
	}
}

func TestNewChat(t *testing.T) {
	s := load(t, "id: a\nstart: a\nattributes: {plan: free, seats: 1}\nnodes:\n"+text("a", "x", ""))
	c := engine.NewChat(s, "id1", "", "ext", map[string]any{"email": "a@b.c"}, map[string]any{"plan": "pro"})
	if c.UserID != "id1" || c.Node != "a" || c.Status != engine.StatusActive || c.StoryID != "a" || c.StoryVersion != 1 {
		t.Errorf("chat = %+v", c)
	}
	if c.Attributes["plan"] != "pro" || c.Attributes["seats"] != 1 {
		t.Errorf("attributes = %v; want story's overlaid with the chat's", c.Attributes)
	}
	c.Attributes["seats"] = 9
	if s.Attributes["seats"] != 1 {
		t.Errorf("chat attributes share the story's map")
	}
}

// recorder is an engine.Observer that keeps what it is told.
type recorder struct {
	nodes []string
	turns []string
}

func (r *recorder) NodeRan(typ string, _ time.Duration, err error) {
	r.nodes = append(r.nodes, fmt.Sprintf("%s:%v", typ, err != nil))
}

func (r *recorder) TurnEnded(c *engine.Chat, err error) {
	r.turns = append(r.turns, fmt.Sprintf("%s:%s:%v", c.StoryID, c.Status, err != nil))
}

func TestObserver(t *testing.T) {
	s := load(t, `id: obs
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Name?"}]
    next: broken
  broken:
    type: fail
`)
	rec := &recorder{}
	r := quietRunner()
	r.Observer = rec
	c, _ := start(t, r, s)
	send(t, r, s, c, engine.Input{Text: "Ann"})
	if got, want := strings.Join(rec.nodes, " "), "question:false question:false fail:true"; got != want {
		t.Errorf("nodes %q, want %q", got, want)
	}
	if got, want := strings.Join(rec.turns, " "), "obs:active:false obs:active:false"; got != want {
		t.Errorf("turns %q, want %q", got, want)
	}
}
