// Package benchstory holds the stories the benchmarks run: the load test's
// two (bench/loadtest), the million-chat seed's (bench/seed), the
// slow-backend benchmark's two (bench/slowbackend) and the API's in-process
// benchmark (api).
package benchstory

import "fmt"

// ask starts story id with the question every bench story asks, which goes
// on to node next.
func ask(id, next string) string {
	return fmt.Sprintf(`id: %s
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Say something"}]
    save: said
    next: %s
`, id, next)
}

// Plain is a turn without webhook: a question and a set step.
var Plain = ask("bench_plain", "count") + `  count:
    type: set
    attributes: {turns: "{{ (attributes.turns ?? 0) + 1 }}"}
    next: ask
`

// Webhook is a turn with a webhook node calling url.
func Webhook(url string) string {
	return ask("bench_webhook", "check") + fmt.Sprintf(`  check:
    type: webhook
    webhook: {url: %q}
    next: ask
`, url)
}

// SlowBackend is the slow-backend benchmark's two stories, "fast" and
// "slow", as one YAML stream: each turn calls its URL and takes the failure
// branch back to the question when the call fails.
func SlowBackend(fastURL, slowURL string) string {
	call := func(id, url, timeout string) string {
		return ask(id, "check") + fmt.Sprintf(`  check:
    type: webhook
    webhook: {url: "%s"%s}
    next: ask
    failure: ask
`, url, timeout)
	}
	return call("fast", fastURL, "") + "---\n" + call("slow", slowURL, ", timeout: 30s")
}
