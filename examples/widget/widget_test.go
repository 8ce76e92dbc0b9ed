package main

import (
	"context"
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
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/storyflow/storyflow/internal/browsertest"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/store/embedded"
)

const token = "widget-test-token"

// backend builds and starts the example CRM backend on a free loopback port.
func backend(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "backend")
	if out, err := exec.Command("go", "build", "-o", bin, "../backends/go").CombinedOutput(); err != nil {
		t.Fatalf("build backend: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-addr", addr, "-token", "dev-token")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
			res.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatal("backend did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storyflow serves the API on loopback with the support story, its CRM
// webhook pointed at crm, and the page's origin allowed.
func storyflow(t *testing.T, crm, origin string) string {
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Store: st, Token: token, AllowPrivateWebhooks: true, CORSOrigins: []string{origin},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		st.Close()
	})
	url := "http://" + ln.Addr().String()
	src, err := os.ReadFile("../stories/support.yaml")
	if err != nil {
		t.Fatal(err)
	}
	putStory(t, url, "support", strings.Replace(string(src), "http://127.0.0.1:8081/crm", "http://"+crm+"/crm", 1))
	return url
}

func putStory(t *testing.T, url, id, src string) {
	req, _ := http.NewRequest("PUT", url+"/v1/stories/"+id, strings.NewReader(src))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("put story %s: %d", id, res.StatusCode)
	}
}

// galleryStory shows an image and cards (images from the page's server, so
// the browser stays on loopback); a card's goto button ends it.
const galleryStory = `id: gallery
start: show
nodes:
  show:
    type: question
    responses:
      - type: image
        imageUrl: "%[1]s/square.png"
      - type: cards
        elements:
          - title: Red
            subtitle: A red square
            imageUrl: "%[1]s/square.png"
            buttons:
              - {type: postback, title: Pick red, value: red}
              - {type: goto, title: Skip, value: bye}
    validate: input in ["red"]
    save: color
    retry:
      - type: cards
        elements:
          - title: Red again
            subtitle: Pick it or skip
            imageUrl: "%[1]s/square.png"
            buttons:
              - {type: postback, title: Pick red, value: red}
              - {type: goto, title: Skip, value: bye}
    next: picked
  picked:
    type: end
    responses: [{type: text, message: "You picked {{ attributes.color }}."}]
  bye:
    type: end
    responses: [{type: text, message: Skipped the gallery.}]
`

// square is a 40x40 red PNG.
func square(w http.ResponseWriter, _ *http.Request) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 40))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{200, 30, 30, 255}}, image.Point{}, draw.Src)
	w.Header().Set("Content-Type", "image/png")
	png.Encode(w, img)
}

// TestWidgetInChromium opens the page in headless Chromium, chats through
// the support story to its menu, clicks a quick reply and sees the answer.
// The screenshot is kept in $ARTIFACTS_DIR (default bin/artifacts).
func TestWidgetInChromium(t *testing.T) {
	browsertest.Path(t) // skip early without a browser
	mux := http.NewServeMux()
	mux.Handle("/", handler())
	mux.HandleFunc("/square.png", square)
	page := httptest.NewServer(mux)
	defer page.Close()
	apiURL := storyflow(t, backend(t), page.URL)
	putStory(t, apiURL, "gallery", fmt.Sprintf(galleryStory, page.URL))

	ctx := browsertest.Start(t, 1000, 800, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL+"/?api="+apiURL+"&story=support")); err != nil {
		t.Fatal(err)
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	// waitText waits until the chat shows want.
	waitText := func(want string) {
		t.Helper()
		for {
			log, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".sfw-log")))
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if strings.Contains(log, want) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %q; the chat shows:\n%s", want, log)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	say := func(text string) {
		t.Helper()
		do(chromedp.WaitEnabled(chromedp.CSS(".sfw-form button[type=submit]")),
			chromedp.SendKeys(chromedp.CSS(".sfw-form input"), text),
			chromedp.Click(chromedp.CSS(".sfw-form button[type=submit]")))
	}

	do(chromedp.WaitVisible(chromedp.CSS(".sfw-launcher")),
		chromedp.Click(chromedp.CSS(".sfw-launcher")),
		chromedp.WaitVisible(chromedp.CSS(".sfw-panel.sfw-open")))
	say("hi")
	waitText("What's the email address on your account?")
	// The question validates an email: the answer is a form, and the input
	// takes an email.
	typ, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(".sfw-form input"), "type"))
	if err != nil {
		t.Fatal(err)
	}
	if typ.Value != "email" {
		t.Errorf("input type at the email question %q, want email", typ.Value)
	}
	say("ann@example.com")
	waitText("How can I help you today, Ann?")
	billing := chromedp.CSS(`.sfw-choices button[data-value="billing"]`)
	do(chromedp.WaitEnabled(billing), chromedp.Click(billing))
	waitText("Your Pro plan is billed monthly.")
	// The answer's buttons: a link and a phone number; then quick replies.
	do(chromedp.WaitVisible(chromedp.CSS(`a.sfw-btn[href="https://shop.example.com/account/invoices"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.sfw-btn[href="tel:+4930123456"]`)))
	waitText("Is there anything else I can help with?")
	keepScreenshot(t, ctx, "widget.png")

	// Images and cards; a card's goto button.
	do(chromedp.Navigate(page.URL+"/?api="+apiURL+"&story=gallery&open=1"),
		chromedp.WaitVisible(chromedp.CSS(".sfw-panel.sfw-open")))
	say("hi")
	waitText("Red again")
	// The image and the card of the start, the card of the retry: the text
	// can be there before the images have loaded, so wait for them.
	const shown = `[...document.querySelectorAll(".sfw-log img")].filter(i => i.complete && i.naturalWidth === 40).length`
	_, waitErr := chromedp.Run(ctx, chromedp.Poll[bool](shown+" >= 3",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[int](shown))
	if err != nil {
		t.Fatal(err)
	}
	if loaded != 3 {
		t.Errorf("%d images shown, want 3 (wait: %v)", loaded, waitErr)
	}
	skip := chromedp.CSS(`.sfw-card button[data-value="bye"]:not([disabled])`)
	do(chromedp.WaitEnabled(skip), chromedp.Click(skip))
	waitText("Skipped the gallery.")
	keepScreenshot(t, ctx, "widget-cards.png")
}

// keepScreenshot saves the page in $ARTIFACTS_DIR (default bin/artifacts).
func keepScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = "../../bin/artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestPageServes: the page and its files come from the embedded files.
func TestPageServes(t *testing.T) {
	srv := httptest.NewServer(handler())
	defer srv.Close()
	for path, want := range map[string]string{"/": "widget.js", "/widget.js": "/v1/widget/", "/widget.css": ".sfw-panel"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d, lacks %q", path, res.StatusCode, want)
		}
	}
	if res, err := http.Get(srv.URL + "/nope"); err != nil || res.StatusCode != 404 {
		t.Fatalf("GET /nope: %v %v", res, err)
	}
}
