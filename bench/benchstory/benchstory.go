// Package benchstory holds the stories the benchmarks run: the load test's
// two (bench/loadtest), the million-chat seed's (bench/seed) and the API's
// in-process benchmark (api).
package benchstory

import "fmt"

// Plain is a turn without webhook: a question and a set step.
const Plain = `id: bench_plain
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Say something"}]
    save: said
    next: count
  count:
    type: set
    attributes: {turns: "{{ (attributes.turns ?? 0) + 1 }}"}
    next: ask
`

// Webhook is a turn with a webhook node calling url.
func Webhook(url string) string {
	return fmt.Sprintf(`id: bench_webhook
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Say something"}]
    save: said
    next: check
  check:
    type: webhook
    webhook: {url: %q}
    next: ask
`, url)
}
