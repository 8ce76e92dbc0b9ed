package studio_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/storyflow/storyflow/internal/browsertest"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/store/embedded"
)

var screenshots = flag.String("screenshots", "testout", "directory for the browser tests' screenshots")

const token = "studio-test-token"

// crm answers the support story's webhook like the example backend does
// for ann@example.com.
func crm(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Attributes map[string]any `json:"attributes"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if req.Attributes["email"] != "ann@example.com" {
			io.WriteString(w, `{"attributes":{"customer":"no"}}`)
			return
		}
		io.WriteString(w, `{"attributes":{"customer":"yes","customer_name":"Ann","plan":"pro","open_orders":2}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// serve starts a server with the example stories (their webhooks pointed
// at crmURL) and extra stories, and returns its base URL.
func serve(t *testing.T, crmURL string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../../examples/stories/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("example stories: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := strings.ReplaceAll(string(b), "http://127.0.0.1:8081", crmURL)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, src := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := api.New(api.Config{Store: st, Token: token, AllowPrivateWebhooks: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, failed, err := srv.WatchStories(dir, time.Hour); err != nil || failed > 0 {
		t.Fatalf("load stories: %d failed, %v", failed, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// browser starts headless chromium with a 1600×1000 window.
func browser(t *testing.T) context.Context {
	return browsertest.Start(t, 1600, 1000, 90*time.Second)
}

// page drives one tab; every failure ends the test.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

// text is the text of the first element that matches the CSS selector.
func (p page) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](p page, js string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// has tells whether an element matches the CSS selector now.
func (p page) has(sel string) bool {
	p.t.Helper()
	b, _ := json.Marshal(sel)
	return eval[bool](p, "!!document.querySelector("+string(b)+")")
}

// noErrors fails the test if the page had a script error.
func noErrors(p page) {
	p.t.Helper()
	if errs := eval[[]string](p, "window.studioErrors"); len(errs) > 0 {
		p.t.Errorf("script errors: %q", errs)
	}
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
func wait(sel string) chromedp.Action[chromedp.Void]  { return chromedp.WaitVisible(chromedp.CSS(sel)) }

// shot saves a screenshot of the page as name.png under -screenshots.
func shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*screenshots, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644)
	})
}

// apiGet reads base+path with the token into v.
func apiGet(t *testing.T, base, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// login opens the studio and enters the token.
func login(p page, base string) {
	p.t.Helper()
	p.do(chromedp.Navigate(base+"/"), wait("#token-input"),
		chromedp.SendKeys(chromedp.CSS("#token-input"), token), click("#token-ok"))
}

const drawnNodes = `[...document.querySelectorAll("#graph g.node")].map(g => g.dataset.id)`

func TestStudioSupport(t *testing.T) {
	base := serve(t, crm(t).URL, nil)
	p := page{t, browser(t)}

	var graph struct {
		Nodes []struct{ ID string } `json:"nodes"`
	}
	apiGet(t, base, "/v1/stories/support/graph?format=json", &graph)
	var want []string
	for _, n := range graph.Nodes {
		want = append(want, n.ID)
	}

	// The story list, then every node of support drawn.
	login(p, base)
	p.do(wait(`#stories[data-ready] li[data-story="support"]`))
	if !eval[bool](p, `sessionStorage.getItem("storyflow.token") === "`+token+`"`) {
		t.Error("the token is not kept in session storage")
	}
	p.do(click(`#stories li[data-story="support"]`), wait(`#graph g.node[data-id="welcome"]`), shot("support-open"),
		click("#fit"), shot("support-graph"))
	drawn := eval[[]string](p, drawnNodes)
	slices.Sort(drawn)
	slices.Sort(want)
	if !slices.Equal(drawn, want) {
		t.Fatalf("drawn nodes %v\nwant %v", drawn, want)
	}
	if !p.has(`#graph path.edge.failure[data-from="check_customer"][data-to="crm_down"]`) {
		t.Error("no failure edge check_customer → crm_down")
	}
	if !p.has(`#graph path.edge.goto[data-from="menu"][data-to="human"]`) {
		t.Error("no goto edge menu → human")
	}

	// A node's YAML with line numbers.
	p.do(click(`#graph g.node[data-id="check_customer"]`), wait(`.node-detail[data-node="check_customer"] pre.yaml`), shot("support-node"))
	yaml := p.text(`.node-detail pre.yaml`)
	if !strings.Contains(yaml, "webhook: crm") || !strings.Contains(yaml, "failure: crm_down") {
		t.Errorf("check_customer's YAML:\n%s", yaml)
	}
	if !p.has(`.node-detail pre.yaml .ln[data-line] .lnum`) {
		t.Error("no line numbers")
	}

	// The live chat: a text, then a quick reply.
	p.do(click(`#tabs button[data-tab="chat"]`), click("#chat-start"), wait(`#graph g.node.current[data-id="ask_email"]`))
	if g := p.text(`#chat-log .msg.bot`); !strings.Contains(g, "Hi Ann!") {
		t.Errorf("greeting %q", g)
	}
	p.do(chromedp.SendKeys(chromedp.CSS("#chat-input"), "ann@example.com"), click("#chat-send"),
		wait(`#graph g.node.current[data-id="menu"]`), wait(`#chat-log .quick-replies button[data-value="orders"]`),
		shot("support-chat-menu"))
	if !p.has(`#graph path.edge.recent[data-from="check_customer"][data-to="menu"]`) {
		t.Error("the route check_customer → menu is not highlighted")
	}
	if a := p.text("#chat-attrs"); !strings.Contains(a, "customer_name") || !strings.Contains(a, `"Ann"`) {
		t.Errorf("attributes shown: %q", a)
	}
	p.do(click(`#chat-log .quick-replies button[data-value="orders"]`), wait(`#graph g.node.current[data-id="anything_else"]`),
		shot("support-chat-orders"))
	if p.has(`#graph g.node.current[data-id="menu"]`) {
		t.Error("the highlight did not move off menu")
	}
	if log := p.text("#chat-log"); !strings.Contains(log, "You have 2 open orders.") {
		t.Errorf("chat log after the quick reply:\n%s", log)
	}
	if !p.has(`#graph path.edge.recent[data-from="order_status"][data-to="open_orders"]`) {
		t.Error("the route order_status → open_orders is not highlighted")
	}
	if !p.has(`#graph g.node.visited[data-id="check_customer"]`) {
		t.Error("the path taken before the last turn is not marked")
	}

	// Replay the chat turn by turn.
	var chats []struct{ ID string }
	apiGet(t, base, "/v1/chats?storyId=support", &chats)
	if len(chats) != 1 {
		t.Fatalf("%d chats, want 1", len(chats))
	}
	p.do(click(fmt.Sprintf(`#chats li[data-chat="%s"]`, chats[0].ID)), wait("#replay-pos"))
	if pos := p.text("#replay-pos"); pos != "Turn 1 of 3" {
		t.Fatalf("replay position %q, want Turn 1 of 3", pos)
	}
	p.do(click("#replay-next"), wait(`#graph g.node.current[data-id="menu"]`), shot("support-replay-turn2"))
	steps := p.text("#tab-replay ol.steps")
	for _, w := range []string{"check_customer", "crm answered 200", `"customer":"yes"`, `route 1 holds: attributes.customer == "yes"`} {
		if !strings.Contains(steps, w) {
			t.Errorf("turn 2's steps lack %q:\n%s", w, steps)
		}
	}
	p.do(click("#replay-next"), wait(`#graph g.node.current[data-id="anything_else"]`))
	noErrors(p)
	current := eval[[]string](p, `[...document.querySelectorAll("#graph g.node.current")].map(g => g.dataset.id)`)
	if pos := p.text("#replay-pos"); pos != "Turn 3 of 3" || !slices.Equal(current, []string{"anything_else"}) {
		t.Errorf("after two steps: %q, current %v", pos, current)
	}
	// Save as test: the chat's test case (GET /v1/chats/:id/test) is fetched
	// and offered as a download.
	p.do(click("#replay-test"), wait(`#replay-test[data-saved]`))
	noErrors(p)
	if n := eval[string](p, `document.querySelector("#replay-test").dataset.saved`); n == "" || n == "0" {
		t.Errorf("save as test: %q bytes", n)
	}
}

// TestStudioLargeStory draws a 200-node story: every node is drawn, and the
// page stays readable (screenshot).
func TestStudioLargeStory(t *testing.T) {
	var b strings.Builder
	b.WriteString("id: big\nname: Two hundred nodes\nstart: n0\nnodes:\n")
	for i := range 200 {
		switch {
		case i == 199:
			fmt.Fprintf(&b, "  n%d:\n    type: end\n    responses: [{type: text, message: bye}]\n", i)
		case i%10 == 0:
			fmt.Fprintf(&b, "  n%d:\n    type: condition\n    routes:\n      - when: attributes.x == %d\n        next: n%d\n    else: n%d\n", i, i, min(i+5, 199), i+1)
		case i%7 == 3:
			fmt.Fprintf(&b, "  n%d:\n    name: Ask %d\n    type: question\n    responses: [{type: text, message: \"q%d\"}]\n    save: a%d\n    next: n%d\n", i, i, i, i, i+1)
		default:
			fmt.Fprintf(&b, "  n%d:\n    type: set\n    attributes: {s%d: \"1\"}\n    next: n%d\n", i, i, i+1)
		}
	}
	base := serve(t, "http://127.0.0.1:1", map[string]string{"big.yaml": b.String()})
	p := page{t, browser(t)}
	login(p, base)
	p.do(wait(`#stories[data-ready] li[data-story="big"]`))
	eval[float64](p, `window.__t0 = performance.now()`)
	p.do(click(`#stories li[data-story="big"]`), wait(`#graph g.node[data-id="n199"]`))
	took := eval[float64](p, `performance.now() - window.__t0`)
	p.do(shot("big-start"), click("#fit"), shot("big-fit"))
	if drawn := eval[[]string](p, drawnNodes); len(drawn) != 200 {
		t.Fatalf("%d nodes drawn, want 200", len(drawn))
	}
	noErrors(p)
	layout := eval[string](p, `document.getElementById("graph").dataset.layoutMs`)
	t.Logf("200-node story opened and drawn in %.0f ms (its layout %s ms)", took, layout)
}

// TestStudioResponses renders every response type in the test chat.
func TestStudioResponses(t *testing.T) {
	img := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := image.NewRGBA(image.Rect(0, 0, 120, 80))
		draw.Draw(m, m.Bounds(), &image.Uniform{color.RGBA{37, 99, 235, 255}}, image.Point{}, draw.Src)
		w.Header().Set("Content-Type", "image/png")
		png.Encode(w, m)
	}))
	t.Cleanup(img.Close)
	story := `id: kinds
name: Every response type
start: show
nodes:
  show:
    type: question
    responses:
      - {type: text, message: "plain text"}
      - {type: randomText, messages: ["random one", "random two"]}
      - {type: image, imageUrl: "` + img.URL + `/a.png"}
      - type: buttons
        title: Some buttons
        buttons:
          - {type: postback, title: Post, value: post}
          - {type: url, title: Site, value: "https://example.com/"}
          - {type: phone, title: Call, value: "+4930123456"}
          - {type: webview, title: View, value: "https://example.com/v"}
      - type: cards
        elements:
          - title: Card one
            subtitle: The first
            imageUrl: "` + img.URL + `/c.png"
            buttons: [{type: postback, title: Pick one, value: one}]
          - title: Card two
            subtitle: The second
            imageUrl: "` + img.URL + `/d.png"
            buttons: [{type: goto, title: To the end, value: done}]
      - type: quickReplies
        title: Pick
        buttons:
          - {type: postback, title: Again, value: again}
          - {type: goto, title: Finish, value: done}
    save: picked
    next: show
  done:
    type: end
    responses: [{type: text, message: "the end"}]
`
	warned := "id: warned\nstart: a\nnodes:\n  a: {type: end, responses: [{type: text, message: a}]}\n  lost: {type: end, responses: [{type: text, message: b}]}\n"
	base := serve(t, "http://127.0.0.1:1", map[string]string{"kinds.yaml": story, "warned.yaml": warned})
	p := page{t, browser(t)}
	login(p, base)
	p.do(wait(`#stories[data-ready] li[data-story="kinds"]`), click(`#stories li[data-story="kinds"]`),
		wait(`#graph g.node[data-id="show"]`), click("#chat-start"), wait(`#chat-log .quick-replies button[data-value="again"]`))
	for _, sel := range []string{
		`#chat-log .msg.text`, `#chat-log .msg.image img[src$="/a.png"]`,
		`#chat-log .buttons button[data-value="post"]`, `#chat-log .buttons a[href="https://example.com/"]`,
		`#chat-log .buttons a[href="tel:+4930123456"]`, `#chat-log .buttons a[href="https://example.com/v"]`,
		`#chat-log .cards .card img[src$="/c.png"]`, `#chat-log .cards button[data-value="done"][data-type="goto"]`,
	} {
		if !p.has(sel) {
			t.Errorf("no %s", sel)
		}
	}
	if log := p.text("#chat-log"); !strings.Contains(log, "plain text") || !strings.Contains(log, "random") ||
		!strings.Contains(log, "Card two") || !strings.Contains(log, "The second") {
		t.Errorf("chat log:\n%s", log)
	}
	loaded := false
	for end := time.Now().Add(10 * time.Second); !loaded && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		loaded = eval[bool](p, `[...document.querySelectorAll("#chat-log img")].every(i => i.complete && i.naturalWidth === 120)`)
	}
	if !loaded {
		t.Error("the images did not load")
	}
	p.do(shot("responses"), click(`#chat-log .cards button[data-value="one"]`),
		wait(`#chat-log .msg.user`), wait(`#chat-attrs tr[data-key="picked"]`))
	if a := p.text(`#chat-attrs tr[data-key="picked"]`); !strings.Contains(a, `"one"`) {
		t.Errorf("picked: %q", a)
	}
	p.do(click(`#chat-log .quick-replies button[data-value="done"]:not([disabled])`), wait(`#graph g.node.current[data-id="done"]`))
	if s := p.text("#chat-status"); s != "completed" {
		t.Errorf("status %q, want completed", s)
	}

	// A story's lints: the count in the list, the node's lint beside its YAML.
	if !p.has(`#stories li[data-story="warned"] .badge.warn`) || !p.has(`#stories li[data-story="kinds"] .badge.ok`) {
		t.Error("the story list does not show the lint counts")
	}
	p.do(click(`#stories li[data-story="warned"]`), wait(`#graph g.node[data-id="lost"]`), click(`#graph g.node[data-id="lost"]`),
		wait(`.node-detail[data-node="lost"] .lint.warning`), shot("lints"))
	if l := p.text(`.node-detail .lint.warning`); !strings.Contains(l, "warned.yaml:5:") || !strings.Contains(l, "not reachable from start") {
		t.Errorf("lint shown: %q", l)
	}
	if !p.has(`#graph g.node[data-id="lost"] circle.lint-dot.warning`) || p.has(`#graph g.node[data-id="a"] circle.lint-dot`) {
		t.Error("the graph does not mark the node with a lint, or marks another")
	}
	if !p.has(`.node-detail pre.yaml .ln.marked[data-line="5"]`) {
		t.Error("the lint's line is not marked")
	}
	noErrors(p)
}
