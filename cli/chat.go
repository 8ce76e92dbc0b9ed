package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

func init() {
	register(&command{
		name: "chat", args: "[flags] FILE",
		summary: "talk to a story in the terminal (real webhooks; private addresses allowed)",
		run:     runChat,
	})
}

const chatHelp = `Type an answer, or the number of an option to pick it. Commands:
  /restart      start a new chat
  /attrs        print the chat's attributes as JSON
  /state        print the chat's node, status and user attributes
  /goto NODE    jump to a node, as a goto button does
  /text TEXT    send TEXT as typed, even if it is an option's number
  /quit         leave`

// kvFlag is a repeatable k=v flag; a value that parses as JSON keeps its
// type (n=2 is a number), anything else is a string.
type kvFlag map[string]any

func (f kvFlag) String() string { return "" }

func (f kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	var x any
	if err := json.Unmarshal([]byte(v), &x); err != nil {
		x = v
	}
	f[k] = x
	return nil
}

func runChat(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("chat", stderr)
	userAttrs, attrs := kvFlag{}, kvFlag{}
	fs.Var(userAttrs, "user-attr", "set a user attribute, e.g. default_name=Ann (repeatable)")
	fs.Var(attrs, "attr", "set a chat attribute, e.g. plan=pro (repeatable)")
	maxSteps := fs.Int("max-steps", 100, "most nodes a turn may run")
	delays := fs.Bool("delays", false, "wait for each response's delay before showing it")
	storyEnv := fs.String("story-env", strings.Join(stories.DefaultEnv, ","), "the ${VAR} names the story may use: names and PREFIX_* patterns, comma separated")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "storyflow chat: want exactly one story file")
		fs.Usage()
		return exitUsage
	}
	// Nodes log what the chat does not show (why a webhook took its failure
	// branch) to stderr. Node failures are shown in the chat, so the runner
	// logs only worse news.
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	logger := func(l slog.Level) *slog.Logger {
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l, ReplaceAttr: noTime}))
	}
	reg, err := newRegistry(nodes.Options{AllowPrivateWebhooks: true, Logger: logger(slog.LevelWarn)})
	if err != nil {
		fmt.Fprintf(stderr, "storyflow chat: %v\n", err)
		return exitFail
	}
	env, err := stories.ParseEnv(*storyEnv)
	if err != nil {
		fmt.Fprintf(stderr, "storyflow chat: --story-env: %v\n", err)
		return exitUsage
	}
	story, warnings, err := stories.LoadFile(pos[0], stories.Options{Registry: reg, Env: env})
	for _, w := range warnings {
		fmt.Fprintln(stderr, w.String())
	}
	if err != nil {
		var le *engine.LintError
		if errors.As(err, &le) {
			for _, l := range le.Lints {
				fmt.Fprintln(stderr, lintLine(l))
			}
			fmt.Fprintf(stderr, "storyflow chat: %s does not load\n", pos[0])
		} else {
			fmt.Fprintf(stderr, "storyflow chat: %v\n", err)
		}
		return exitFail
	}
	s := &session{
		story: story, out: stdout, interactive: isTerminal(stdin), delays: *delays,
		userAttrs: userAttrs, attrs: attrs,
		runner: &engine.Runner{
			MaxSteps: *maxSteps,
			Logger:   logger(slog.LevelError),
			AnyGoto:  true, // the designer's /goto jumps anywhere
		},
	}
	return s.loop(context.Background(), stdin)
}

// isTerminal tells whether r is an interactive terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// session is one terminal conversation with a story.
type session struct {
	story       *engine.Story
	runner      *engine.Runner
	chat        *engine.Chat
	userAttrs   map[string]any
	attrs       map[string]any
	out         io.Writer
	interactive bool
	delays      bool
	// options are the buttons last shown that can be picked by number; they
	// are cleared when the chat moves to another node.
	options []engine.Button
}

func (s *session) loop(ctx context.Context, in io.Reader) int {
	title := s.story.ID
	if s.story.Name != "" {
		title = s.story.Name + " (" + s.story.ID + ")"
	}
	fmt.Fprintf(s.out, "chatting with %s — /help for commands\n", title)
	if code, done := s.start(ctx); done {
		return code
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for {
		if s.interactive {
			fmt.Fprint(s.out, "> ")
		}
		if !sc.Scan() {
			break
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if !s.interactive {
			fmt.Fprintf(s.out, "> %s\n", line)
		}
		if code, done := s.handle(ctx, line); done {
			return code
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(s.out, "(cannot read input: %v)\n", err)
		return exitFail
	}
	if s.interactive {
		fmt.Fprintln(s.out)
	}
	return exitOK
}

// start begins a new chat and shows its first turn.
func (s *session) start(ctx context.Context) (int, bool) {
	s.chat = engine.NewChat(s.story, uuid.NewString(), "cli", "", s.userAttrs, s.attrs)
	s.options = nil
	t, err := s.runner.Start(ctx, s.story, s.chat)
	if err != nil {
		fmt.Fprintf(s.out, "(error: %v)\n", err)
		return exitFail, true
	}
	return s.show(t, engine.StatusActive)
}

// handle runs one line of input: a command, an option's number, or text.
func (s *session) handle(ctx context.Context, line string) (int, bool) {
	if cmd, arg, isCmd := splitCommand(line); isCmd {
		switch cmd {
		case "/quit", "/exit", "/q":
			return exitOK, true
		case "/help", "/?":
			fmt.Fprintln(s.out, chatHelp)
		case "/restart":
			fmt.Fprintln(s.out, "(restarted)")
			return s.start(ctx)
		case "/attrs":
			fmt.Fprintln(s.out, toJSON(s.chat.Attributes, true))
		case "/state":
			s.state()
		case "/goto":
			if arg == "" {
				fmt.Fprintln(s.out, "(usage: /goto NODE)")
				return 0, false
			}
			return s.send(ctx, engine.Input{Goto: arg})
		case "/text":
			if arg == "" {
				fmt.Fprintln(s.out, "(usage: /text TEXT)")
				return 0, false
			}
			return s.send(ctx, engine.Input{Text: arg})
		default:
			fmt.Fprintf(s.out, "(unknown command %s; /help lists them)\n", cmd)
		}
		return 0, false
	}
	if n, err := strconv.Atoi(line); err == nil && n >= 1 && n <= len(s.options) {
		b := s.options[n-1]
		fmt.Fprintf(s.out, "(picked %s)\n", b.Title)
		if b.Type == "goto" {
			return s.send(ctx, engine.Input{Goto: b.Value})
		}
		return s.send(ctx, engine.Input{Postback: b.Value})
	}
	return s.send(ctx, engine.Input{Text: line})
}

// splitCommand splits "/goto node" into "/goto" and "node".
func splitCommand(line string) (cmd, arg string, ok bool) {
	if !strings.HasPrefix(line, "/") {
		return "", "", false
	}
	cmd, arg, _ = strings.Cut(line, " ")
	return strings.ToLower(cmd), strings.TrimSpace(arg), true
}

// send runs a turn with in and shows it.
func (s *session) send(ctx context.Context, in engine.Input) (int, bool) {
	before, node := s.chat.Status, s.chat.Node
	s.chat.Error = ""
	t, err := s.runner.Send(ctx, s.story, s.chat, in)
	switch {
	case errors.Is(err, engine.ErrChatClosed):
		fmt.Fprintf(s.out, "(the chat is %s and takes no more input; /restart or /quit)\n", s.chat.Status)
		return 0, false
	case err != nil:
		fmt.Fprintf(s.out, "(error: %v)\n", err)
		return 0, false
	}
	if before == engine.StatusHandoff && s.chat.Status == engine.StatusHandoff {
		fmt.Fprintln(s.out, "(recorded; a human has this chat, the bot does not answer — /restart to start over)")
		return 0, false
	}
	if s.chat.Node != node {
		// Options shown at another node no longer apply.
		s.options = nil
	}
	return s.show(t, before)
}

// show prints a turn's responses, events and status change. It tells
// whether the session is over (a closed chat when input is piped).
func (s *session) show(t *engine.Turn, before engine.Status) (int, bool) {
	if hasOptions(t.Output) {
		s.options = nil
	}
	for i := range t.Output {
		r := &t.Output[i]
		if s.delays && r.Delay > 0 {
			time.Sleep(time.Duration(r.Delay) * time.Millisecond)
		}
		s.response(r)
	}
	for _, e := range t.Events {
		fmt.Fprintf(s.out, "⚡ event %s %s\n", e.Name, toJSON(e.Data, false))
	}
	c := s.chat
	if c.Error != "" && c.Status != engine.StatusFailed {
		fmt.Fprintf(s.out, "(error: %s)\n", c.Error)
	}
	if c.Status == before {
		return 0, false
	}
	switch c.Status {
	case engine.StatusCompleted:
		fmt.Fprintln(s.out, "(chat completed)")
		if !s.interactive {
			return exitOK, true
		}
		fmt.Fprintln(s.out, "(/restart to talk again, /quit to leave)")
	case engine.StatusHandoff:
		line := "(chat handed off to a human)"
		if t.Task != nil {
			line += " task: " + toJSON(t.Task, false)
		}
		fmt.Fprintln(s.out, line)
	case engine.StatusFailed:
		fmt.Fprintf(s.out, "(chat failed: %s)\n", c.Error)
		if !s.interactive {
			return exitFail, true
		}
	}
	return 0, false
}

// hasOptions tells whether rs hold a button that can be picked by number.
func hasOptions(rs []engine.Response) bool {
	pickable := func(bs []engine.Button) bool {
		for _, b := range bs {
			if b.Type == "postback" || b.Type == "goto" {
				return true
			}
		}
		return false
	}
	for _, r := range rs {
		if pickable(r.Buttons) {
			return true
		}
		for _, c := range r.Elements {
			if pickable(c.Buttons) {
				return true
			}
		}
	}
	return false
}

// state prints /state.
func (s *session) state() {
	c := s.chat
	typ := ""
	if n := s.story.Nodes[c.Node]; n != nil {
		typ = " (" + n.Type + ")"
	}
	status := string(c.Status)
	if c.Waiting {
		status += ", waiting for input"
	}
	fmt.Fprintf(s.out, "story:          %s (%s)\n", s.story.ID, s.story.File)
	fmt.Fprintf(s.out, "chat:           %s\n", c.ID)
	fmt.Fprintf(s.out, "node:           %s%s\n", c.Node, typ)
	fmt.Fprintf(s.out, "status:         %s\n", status)
	if c.Error != "" {
		fmt.Fprintf(s.out, "error:          %s\n", c.Error)
	}
	fmt.Fprintf(s.out, "userAttributes: %s\n", toJSON(c.UserAttributes, false))
	fmt.Fprintf(s.out, "transcript:     %d entries\n", len(c.Transcript))
}

const (
	botPrefix = "bot: "
	indent    = "     "
)

// response prints one bot response.
func (s *session) response(r *engine.Response) {
	w := s.out
	switch r.Type {
	case engine.TypeText:
		fmt.Fprintln(w, botPrefix+indentLines(r.Message))
	case engine.TypeRandomText:
		if len(r.Messages) > 0 {
			fmt.Fprintln(w, botPrefix+indentLines(r.Messages[rand.IntN(len(r.Messages))]))
		}
	case engine.TypeImage:
		fmt.Fprintln(w, botPrefix+"[image] "+r.ImageURL)
	case engine.TypeFile:
		fmt.Fprintln(w, botPrefix+"[file] "+r.FileURL)
	case engine.TypeQuickReplies, engine.TypeButtons:
		fmt.Fprintln(w, botPrefix+indentLines(r.Title))
		labels := make([]string, len(r.Buttons))
		for i, b := range r.Buttons {
			labels[i] = s.button(b)
		}
		fmt.Fprintln(w, indent+strings.Join(labels, "  "))
	case engine.TypeCards:
		for i, c := range r.Elements {
			lines := []string{c.Title, c.Subtitle}
			if c.ImageURL != "" {
				lines = append(lines, "[image] "+c.ImageURL)
			}
			for _, b := range c.Buttons {
				lines = append(lines, s.button(b))
			}
			prefix := indent
			if i == 0 {
				prefix = botPrefix
			}
			box(w, prefix, lines)
		}
	default:
		fmt.Fprintf(w, "%s[%s] %s\n", botPrefix, r.Type, toJSON(r, false))
	}
}

// button labels a button; postback and goto buttons get the next number.
func (s *session) button(b engine.Button) string {
	switch b.Type {
	case "postback":
		s.options = append(s.options, b)
		return fmt.Sprintf("%d) %s", len(s.options), b.Title)
	case "goto":
		s.options = append(s.options, b)
		return fmt.Sprintf("%d) %s (goto %s)", len(s.options), b.Title, b.Value)
	case "url":
		return link(b.Title, "↗ "+b.Value)
	case "webview":
		return link(b.Title, fmt.Sprintf("↗ %s (webview, %s)", b.Value, b.Height))
	case "phone":
		return link(b.Title, "☎ "+b.Value)
	default:
		return link(b.Title, b.Type+" "+b.Value)
	}
}

func link(title, target string) string {
	if title == "" {
		return "[" + target + "]"
	}
	return "[" + title + " " + target + "]"
}

// box draws lines in a box; the first line starts with prefix, the others
// are indented as wide.
func box(w io.Writer, prefix string, lines []string) {
	width := 0
	for _, l := range lines {
		width = max(width, utf8.RuneCountInString(l))
	}
	pad := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	bar := strings.Repeat("─", width+2)
	fmt.Fprintf(w, "%s┌%s┐\n", prefix, bar)
	for _, l := range lines {
		fmt.Fprintf(w, "%s│ %s%s │\n", pad, l, strings.Repeat(" ", width-utf8.RuneCountInString(l)))
	}
	fmt.Fprintf(w, "%s└%s┘\n", pad, bar)
}

// indentLines indents the lines after the first under the bot prefix.
func indentLines(s string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}

// toJSON encodes v (map keys sorted); it never fails for chat data.
func toJSON(v any, pretty bool) string {
	var b []byte
	var err error
	if pretty {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}
