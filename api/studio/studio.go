// Package studio serves the studio (SPEC §4, GET /): one page, embedded in
// the binary, that lists the stories with their lints, draws a story's graph,
// runs a test chat beside it and replays stored chats on it. The page needs
// no token to load; it asks the user for the API token and calls the API
// with it. Its sources are in web/, bundled into dist/ (make studio).
package studio

import (
	"embed"
	"io/fs"
	"mime"
	"path"

	"github.com/gofiber/fiber/v2"
)

//go:embed dist
var dist embed.FS

// Files are the bundled page's files (index.html, studio.js, studio.css).
var Files, _ = fs.Sub(dist, "dist")

// csp keeps the page to its own scripts and the API; images of bot
// responses may come from anywhere.
const csp = "default-src 'self'; img-src * data:; style-src 'self' 'unsafe-inline'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Register serves the page at / and its assets at /studio/<file>.
func Register(r fiber.Router) {
	r.Get("/", func(c *fiber.Ctx) error { return send(c, "index.html") })
	r.Get("/studio/:file", func(c *fiber.Ctx) error { return send(c, c.Params("file")) })
}

func send(c *fiber.Ctx, name string) error {
	b, err := fs.ReadFile(Files, name)
	if err != nil || name == "" || name != path.Base(name) {
		return fiber.NewError(fiber.StatusNotFound, "studio has no file "+name)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("Content-Security-Policy", csp)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	return c.Send(b)
}
