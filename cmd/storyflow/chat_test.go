package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A want line is matched exactly (trailing spaces aside), or as a regular
// expression when it starts with "re:".
func matchLine(line, want string) bool {
	if re, ok := strings.CutPrefix(want, "re:"); ok {
		return regexp.MustCompile(re).MatchString(line)
	}
	return strings.TrimRight(line, " ") == want
}

// wantTranscript checks that the want lines occur in out in this order.
func wantTranscript(t *testing.T, out string, want []string) {
	t.Helper()
	ls := lines(out)
	i := 0
	for _, w := range want {
		for i < len(ls) && !matchLine(ls[i], w) {
			i++
		}
		if i == len(ls) {
			t.Fatalf("line %q missing (or out of order) in transcript:\n%s", w, out)
		}
		i++
	}
}

func TestChat(t *testing.T) {
	tests := []struct {
		name    string
		story   string
		args    []string
		backend bool
		input   []string
		code    int
		want    []string
		// absent lines must not appear anywhere.
		absent []string
	}{
		{
			name:    "support: a pro customer checks orders",
			story:   "support.yaml",
			args:    []string{"--user-attr", "default_name=Ann"},
			backend: true,
			input:   []string{"ann@example", "ann@example.com", "1", "3"},
			want: []string{
				"bot: Hi Ann! I'm the Acme support bot.",
				"bot: What's the email address on your account?",
				"> ann@example",
				"bot: That doesn't look like an email address. Please try again, e.g. ann@example.com.",
				"> ann@example.com",
				"bot: Welcome back, Ann! You are on the Pro plan.",
				"bot: You have 2 open orders.",
				"bot: How can I help you today, Ann?",
				"     1) Order status  2) Billing  3) Upgrade my plan  4) Talk to a human (goto human)",
				"> 1",
				"(picked Order status)",
				"bot: You have 2 open orders. Each one has a tracking link in your account.",
				"bot: Where to next?",
				"     [My orders ↗ https://shop.example.com/account/orders]  1) Main menu (goto menu)",
				"bot: Is there anything else I can help with?",
				"     2) Yes  3) No, thanks",
				"> 3",
				"(picked No, thanks)",
				"re:^bot: (Thanks for chatting with Acme|Glad I could help|Happy to help)",
				"(chat completed)",
			},
		},
		{
			name:    "support: an unknown email retries, then billing on the free plan",
			story:   "support.yaml",
			backend: true,
			input:   []string{"zed@example.com", "maybe", "1", "bob@example.com", "2", "1", "/quit", "never read"},
			want: []string{
				"bot: Hi there! I'm the Acme support bot.",
				"bot: I couldn't find zed@example.com in our records. What would you like to do?",
				"     1) Try another email  2) Just browsing  3) Talk to a human (goto human)",
				"> maybe",
				"bot: Please pick one of the options.",
				"> 1",
				"(picked Try another email)",
				"bot: What's the email address on your account?",
				"> bob@example.com",
				"bot: Welcome back, Bob! You are on the Free plan.",
				"bot: How can I help you today, Bob?",
				"> 2",
				"bot: You're on the Free plan, so there is nothing to pay.",
				"bot: Is there anything else I can help with?",
				"> 1",
				"(picked Yes)",
				"bot: How can I help you today, Bob?",
				"> /quit",
			},
			absent: []string{"> never read", "(chat completed)"},
		},
		{
			name:    "support: goto button hands off to a human",
			story:   "support.yaml",
			backend: true,
			input:   []string{"zed@example.com", "3", "hello, anyone?"},
			want: []string{
				"> 3",
				"(picked Talk to a human)",
				"bot: I'm connecting you with a colleague. They will reply right here.",
				`(chat handed off to a human) task: {"customer":"no","email":"zed@example.com","plan":"free","title":"Support request from zed@example.com","topic":null}`,
				"> hello, anyone?",
				"(recorded; a human has this chat, the bot does not answer — /restart to start over)",
			},
		},
		{
			name:    "support: enterprise billing hands off",
			story:   "support.yaml",
			backend: true,
			input:   []string{"carol@example.com", "2"},
			want: []string{
				"bot: Welcome back, Carol! You are on the Enterprise plan.",
				"bot: You have 1 open order.",
				"> 2",
				"bot: Enterprise invoices are handled by your account manager. I'll put you through.",
				"bot: I'm connecting you with a colleague. They will reply right here.",
				`re:^\(chat handed off to a human\) task: \{.*"plan":"enterprise".*"topic":"billing"`,
			},
		},
		{
			name:    "support: upgrade cards",
			story:   "support.yaml",
			backend: true,
			input:   []string{"ann@example.com", "3", "free please", "2"},
			want: []string{
				"> 3",
				"bot: ┌──────────────────────────────────────────────────┐",
				"     │ Pro                                              │",
				"     │ $29 a month, 5 seats, email support              │",
				"     │ [image] https://shop.example.com/img/pro.png     │",
				"     │ 1) Choose Pro                                    │",
				"     │ [Compare plans ↗ https://shop.example.com/plans] │",
				"     └──────────────────────────────────────────────────┘",
				"     │ 2) Choose Enterprise                                          │",
				"     │ [Book a demo ↗ https://shop.example.com/demo (webview, tall)] │",
				"> free please",
				"bot: Please choose one of the plans above.",
				// The cards' numbers still apply after a retry at the same node.
				"> 2",
				"(picked Choose Enterprise)",
				"bot: Great choice! A colleague will set up enterprise for you and reply here.",
				`(chat handed off to a human) task: {"email":"ann@example.com","plan":"pro","title":"Upgrade ann@example.com from pro to enterprise","wanted":"enterprise"}`,
			},
		},
		{
			name:    "orders: confirm emits order.requested",
			story:   "orders.yaml",
			backend: true,
			input:   []string{"tea", "1", "two", "0", "2", "1 Main Street, 10115 Berlin", "ann@example.com", "1", "ignored"},
			want: []string{
				"bot: Welcome to Acme Coffee! Let's get your order started.",
				"bot: [image] https://shop.example.com/img/menu.jpg",
				"bot: What would you like to order?",
				"     1) Espresso beans 1kg  2) Filter roast 500g  3) Hand grinder",
				"> tea",
				"bot: Sorry, we only sell these for now. Please pick one.",
				"> 1",
				"(picked Espresso beans 1kg)",
				"bot: How many would you like? (1 to 99)",
				"> two",
				"bot: Please type a number, like 2.",
				"> 0",
				"bot: We take orders of 1 to 99 whole items.",
				"bot: How many would you like? (1 to 99)",
				"> 2",
				"bot: Where should we deliver? Street, postcode and city, please.",
				"> ann@example.com",
				"re:^bot: ┌─+┐$",
				`re:^     │ Espresso beans 1kg +│$`,
				`re:^     │ 2 × \$24\.90 = \$49\.80 +│$`,
				`re:^     │ \[image\] https://shop\.example\.com/img/espresso\.jpg +│$`,
				`re:^     │ \[Details ↗ https://shop\.example\.com/p/espresso\] +│$`,
				`re:^bot: Order ORD-\d{6}: \$49\.80 in total\. Shall I place it\?$`,
				"     1) Confirm  2) Cancel",
				"bot: Once you confirm, we deliver to 1 Main Street, 10115 Berlin.",
				"> 1",
				"(picked Confirm)",
				`re:^bot: Thank you! Order ORD-\d{6} is placed: 2 × espresso, \$49\.80 in total\. The receipt goes to ann@example\.com\.$`,
				`re:^⚡ event order\.requested \{"address":"1 Main Street, 10115 Berlin","currency":"USD","email":"ann@example\.com","orderId":"ORD-\d{6}","product":"espresso","quantity":2,"total":49\.8\}$`,
				"(chat completed)",
			},
			absent: []string{"> ignored"},
		},
		{
			name:    "orders: cancel",
			story:   "orders.yaml",
			backend: true,
			args:    []string{"--user-attr", "default_name=Bo"},
			input:   []string{"3", "1", "Hauptstrasse 1, Berlin", "bo@example.com", "what?", "2"},
			want: []string{
				"bot: Welcome to Acme Coffee, Bo! Let's get your order started.",
				"re:^bot: Order ORD-\\d{6}: \\$59\\.00 in total\\. Shall I place it\\?$",
				"> what?",
				"bot: Please confirm or cancel the order.",
				"> 2",
				"(picked Cancel)",
				"bot: No problem, I've cancelled the order. Come back any time!",
				"(chat completed)",
			},
			absent: []string{"⚡ event order.requested"},
		},
		{
			name:  "leads: a hot lead",
			story: "leads.yaml",
			input: []string{"A", "Ann Smith", "ann@acme", "ann@acme.io", "call me", "+49 30 1234567",
				"acme.io", "https://acme.io", "lots", "25000", "9", "1"},
			want: []string{
				"bot: What's your name?",
				"> A",
				"bot: Please tell me your name (at least two letters).",
				"bot: Nice to meet you, Ann Smith! What is your work email?",
				"> ann@acme",
				"bot: That doesn't look like an email address. Please try again.",
				"> call me",
				"bot: Please give a phone number with digits only, spaces allowed, like +49 30 1234567.",
				"> acme.io",
				"bot: Please give the full address, starting with https://",
				"> lots",
				"bot: Please answer with a number, like 5000.",
				"bot: What are you most interested in?",
				"     1) Chatbots  2) Live chat  3) Integrations  4) Something else",
				"> 9",
				"bot: Please pick one of these.",
				"> 1",
				"(picked Chatbots)",
				"bot: With that budget our solutions team will prepare a tailored proposal for you.",
				"bot: Thanks, Ann Smith! Someone from our team will contact you within one business day.",
				`⚡ event lead.captured {"budget":25000,"email":"ann@acme.io","interest":"chatbots","name":"Ann Smith","phone":"+49 30 1234567","score":100,"source":"storyflow","tier":"hot","website":"https://acme.io"}`,
				"(chat completed)",
			},
		},
		{
			name:  "leads: a small budget, interest typed as free text",
			story: "leads.yaml",
			input: []string{"Bo", "bo@gmail.com", "+1 555 0100", "https://bo.example", "300", "Live Chat"},
			want: []string{
				"> Live Chat",
				"bot: Our self-service plans start at €29 a month. You can start right away.",
				"bot: Have a look",
				"     [Pricing ↗ https://example.com/pricing]  [Start a trial ↗ https://example.com/trial (webview, compact)]",
				`⚡ event lead.captured {"budget":300,"email":"bo@gmail.com","interest":"live chat","name":"Bo","phone":"+1 555 0100","score":20,"source":"storyflow","tier":"cold","website":"https://bo.example"}`,
				"(chat completed)",
			},
		},
		{
			name:  "commands: goto, state, restart, unknown",
			story: "leads.yaml",
			input: []string{"/goto ask_budget", "/state", "/goto nowhere", "/bogus", "/restart", "/goto", "/help"},
			want: []string{
				"bot: What's your name?",
				"> /goto ask_budget",
				"bot: Roughly what budget do you have in mind, in euros per year?",
				"> /state",
				"story:          leads (" + examples + "leads.yaml)",
				"node:           ask_budget (question)",
				"status:         active, waiting for input",
				`userAttributes: {}`,
				"> /goto nowhere",
				`(error: goto "nowhere": node not found)`,
				"> /bogus",
				"(unknown command /bogus; /help lists them)",
				"> /restart",
				"(restarted)",
				"bot: Hi! I'd love to hear about your project. Six quick questions and we're done.",
				"bot: What's your name?",
				"> /goto",
				"(usage: /goto NODE)",
				"> /help",
				"  /attrs        print the chat's attributes as JSON",
			},
		},
		{
			name:  "a loop fails the chat",
			story: "testdata/loop.yaml",
			args:  []string{"--max-steps", "7"},
			code:  1,
			want:  []string{"(chat failed: turn ran more than 7 nodes: loop check -> count -> check)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.backend {
				needBackend(t)
			}
			file := tt.story
			if !strings.HasPrefix(file, "testdata/") {
				file = examples + file
			}
			args := append([]string{"chat", file}, tt.args...)
			r := run(t, strings.Join(tt.input, "\n")+"\n", args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", r.code, tt.code, r.stderr)
			}
			wantTranscript(t, r.stdout, tt.want)
			for _, a := range tt.absent {
				if strings.Contains(r.stdout, a) {
					t.Errorf("output holds %q:\n%s", a, r.stdout)
				}
			}
		})
	}
}

func TestChatAttrs(t *testing.T) {
	r := run(t, "Ann\nann@acme.io\n+49 30 1234567\nhttps://acme.io\n1500.5\n/attrs\n",
		"chat", "--attr", "campaign=spring", "--attr", "visits=3", examples+"leads.yaml")
	if r.code != 0 {
		t.Fatalf("exit code %d\n%s", r.code, r.stderr)
	}
	_, after, ok := strings.Cut(r.stdout, "> /attrs\n")
	if !ok {
		t.Fatalf("no /attrs in output:\n%s", r.stdout)
	}
	var attrs map[string]any
	if err := json.Unmarshal([]byte(after), &attrs); err != nil {
		t.Fatalf("/attrs is not JSON: %v\n%s", err, after)
	}
	want := map[string]any{
		"campaign": "spring", "visits": 3.0, // --attr values keep their JSON type
		"name": "Ann", "email": "ann@acme.io", "phone": "+49 30 1234567", "website": "https://acme.io",
		"budget": 1500.5, // validate: number stores a number
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attrs[%q] = %#v, want %#v", k, attrs[k], v)
		}
	}
	if len(attrs) != len(want) {
		t.Errorf("attrs %v, want %v", attrs, want)
	}
}

// TestChatWebhookFailure points the support story's CRM at a closed port:
// the webhook node's failure branch hands the chat to a human.
func TestChatWebhookFailure(t *testing.T) {
	src, err := os.ReadFile(examples + "support.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dead := strings.ReplaceAll(string(src), "127.0.0.1:8081", freePort(t))
	file := filepath.Join(t.TempDir(), "support.yaml")
	if err := os.WriteFile(file, []byte(dead), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "ann@example.com\n", "chat", file)
	if r.code != 0 {
		t.Fatalf("exit code %d\n%s", r.code, r.stderr)
	}
	wantTranscript(t, r.stdout, []string{
		"> ann@example.com",
		"bot: Sorry, I can't reach our customer records right now. Let me find a colleague for you.",
		"bot: I'm connecting you with a colleague. They will reply right here.",
		`(chat handed off to a human) task: {"customer":"unknown","email":"ann@example.com","plan":"free","title":"Support request from ann@example.com","topic":null}`,
	})
	// Why the branch was taken goes to stderr, as a warning of the node.
	if !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, "check_customer") {
		t.Errorf("stderr does not explain the failure:\n%s", r.stderr)
	}
}

// TestChatLoadError shows the lints of a story that does not load.
func TestChatLoadError(t *testing.T) {
	r := run(t, "", "chat", "testdata/bad.yaml")
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1", r.code)
	}
	wantLines(t, r.stderr,
		`testdata/bad.yaml:9:11: node "hello" (message): next: node "nowhere" not found`,
		"storyflow chat: testdata/bad.yaml does not load")
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
}
