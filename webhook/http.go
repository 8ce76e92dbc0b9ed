package webhook

import "net/http"

// HTTP returns the client's http.Client: it dials through the outbound
// address guard and strips headers on redirects to another host. Event
// delivery shares it.
func (c *Client) HTTP() *http.Client { return c.http }
