package gateway

import (
	"bytes"
	"net"
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// reqHeaders is what one pass over a request's header block found: whether
// the slower rewrites are needed at all. Most requests carry none of these
// headers, and fasthttp's Del and Peek each scan every header.
type reqHeaders struct {
	hop     bool // a hop-by-hop header (Connection, Keep-Alive, Upgrade, …)
	xff     int  // X-Forwarded-For lines
	xfHost  bool
	xfProto bool
	expect  bool
}

// scanRequestHeaders reads the request's header block as it arrived on the
// wire (RequestHeader.RawHeaders); names are matched case-insensitively.
func scanRequestHeaders(raw []byte) reqHeaders {
	var s reqHeaders
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		k := line[:colon]
		switch len(k) {
		case 2:
			s.hop = s.hop || foldEq(k, "te")
		case 6:
			s.expect = s.expect || foldEq(k, "expect")
		case 7:
			s.hop = s.hop || foldEq(k, "upgrade") || foldEq(k, "trailer")
		case 10:
			s.hop = s.hop || foldEq(k, "connection") || foldEq(k, "keep-alive")
		case 15:
			if foldEq(k, "x-forwarded-for") {
				s.xff++
			}
		case 16:
			s.xfHost = s.xfHost || foldEq(k, "x-forwarded-host")
			s.hop = s.hop || foldEq(k, "proxy-connection")
		case 17:
			s.xfProto = s.xfProto || foldEq(k, "x-forwarded-proto")
		case 18:
			s.hop = s.hop || foldEq(k, "proxy-authenticate")
		case 19:
			s.hop = s.hop || foldEq(k, "proxy-authorization")
		}
	}
	return s
}

// hopHeaders concern one connection only (RFC 9110, 7.6.1), so a proxy
// drops them; Transfer-Encoding is framing, which the gateway redoes.
var hopHeaders = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

// rewriteRequest turns the client's request into the backend's, in place:
// the hop-by-hop headers go (an Upgrade is kept for the backend to answer),
// X-Forwarded-For/Host/Proto are set, and the request goes out as HTTP/1.1
// so the backend connection stays alive. The path and query go out exactly
// as the client sent them.
func (st *reqState) rewriteRequest(hs reqHeaders) {
	h := &st.ctx.Request.Header
	if hs.hop {
		// Copies: Del recycles the buffers Peek returns.
		conn := append(st.tmp[:0], h.Peek(fasthttp.HeaderConnection)...)
		if hasToken(conn, "upgrade") {
			st.upgrade = append(st.upgrade[:0], h.Peek(fasthttp.HeaderUpgrade)...)
		}
		trailers := hasToken(h.Peek(headerTE), "trailers")
		for v := conn; len(v) > 0; {
			var tok []byte
			if tok, v = nextToken(v); len(tok) > 0 {
				h.DelBytes(tok)
			}
		}
		for _, k := range hopHeaders {
			h.Del(k)
		}
		if len(st.upgrade) > 0 {
			h.Set(fasthttp.HeaderConnection, "Upgrade")
			h.SetBytesV(fasthttp.HeaderUpgrade, st.upgrade)
		}
		if trailers {
			// What gRPC needs to hear, as net/http's ReverseProxy keeps it.
			h.Set(headerTE, "trailers")
		}
		st.tmp = conn
	}
	h.ResetConnectionClose()
	if hs.expect {
		// The gateway has already answered 100 Continue and read the body.
		h.Del(fasthttp.HeaderExpect)
	}
	if !h.IsHTTP11() {
		h.SetProtocolBytes(http11)
	}
	// A body without a Content-Type goes out without one.
	h.SetNoDefaultContentType(true)

	// X-Forwarded-For: internal callers (including a load balancer in front
	// of the external network) are trusted to report the chain so far; on
	// the external listener a client could forge it, so it starts over.
	xff := st.xff[:0]
	if st.listener == Internal && hs.xff > 0 {
		if hs.xff == 1 {
			xff = append(xff, h.Peek(fasthttp.HeaderXForwardedFor)...)
		} else {
			for i, v := range h.PeekAll(fasthttp.HeaderXForwardedFor) {
				if i > 0 {
					xff = append(xff, ", "...)
				}
				xff = append(xff, v...)
			}
		}
		xff = append(xff, ", "...)
	}
	xff = appendClientIP(xff, st.ctx.RemoteAddr())
	st.xff = xff
	if hs.xff > 0 {
		h.Del(fasthttp.HeaderXForwardedFor)
	}
	h.AddBytesV(fasthttp.HeaderXForwardedFor, xff)
	if hs.xfHost {
		h.Del(fasthttp.HeaderXForwardedHost)
	}
	if host := h.Host(); len(host) > 0 {
		h.AddBytesV(fasthttp.HeaderXForwardedHost, host)
	}
	if hs.xfProto {
		h.Del(fasthttp.HeaderXForwardedProto)
	}
	proto := "http"
	if st.ctx.IsTLS() {
		proto = "https"
	}
	h.Add(fasthttp.HeaderXForwardedProto, proto)
}

var http11 = []byte("HTTP/1.1")

// headerTE is TE as fasthttp normalises parsed names.
const headerTE = "Te"

// stripResponseHeaders drops the backend's hop-by-hop headers before the
// response goes to the client; a 101 keeps Connection and Upgrade, which
// are the answer itself.
func stripResponseHeaders(h *fasthttp.ResponseHeader, tmp []byte, switching bool) []byte {
	var conn, hop bool
	for k := range h.All() {
		switch string(k) {
		case fasthttp.HeaderConnection:
			conn = true
		case fasthttp.HeaderKeepAlive, fasthttp.HeaderProxyConnection, fasthttp.HeaderProxyAuthenticate, headerTE, fasthttp.HeaderUpgrade:
			hop = true
		}
	}
	if conn {
		tmp = append(tmp[:0], h.Peek(fasthttp.HeaderConnection)...)
		for v := tmp; len(v) > 0; {
			var tok []byte
			if tok, v = nextToken(v); len(tok) > 0 && !(switching && foldEq(tok, "upgrade")) {
				h.DelBytes(tok)
			}
		}
		if !switching {
			h.Del(fasthttp.HeaderConnection)
		}
	}
	if hop {
		for _, k := range [...]string{fasthttp.HeaderKeepAlive, fasthttp.HeaderProxyConnection, fasthttp.HeaderProxyAuthenticate, headerTE} {
			h.Del(k)
		}
		if !switching {
			h.Del(fasthttp.HeaderUpgrade)
		}
	}
	// The backend's Connection: close is about its own connection.
	h.ResetConnectionClose()
	// The standard reason phrase and HTTP/1.1, as net/http would write
	// them; fasthttp keeps both ready-made.
	h.SetProtocol(nil)
	h.SetStatusMessage(nil)
	return tmp
}

// appendClientIP appends the address of the client as X-Forwarded-For
// lists it: the IP without its port.
func appendClientIP(dst []byte, addr net.Addr) []byte {
	if a, ok := addr.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap().AppendTo(dst)
		}
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		host = addr.String()
	}
	return append(dst, host...)
}

// nextToken splits the first element off a comma-separated header value.
func nextToken(v []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		tok, rest = v[:i], v[i+1:]
	} else {
		tok = v
	}
	return bytes.TrimSpace(tok), rest
}

func hasToken(v []byte, lower string) bool {
	for len(v) > 0 {
		var tok []byte
		if tok, v = nextToken(v); foldEq(tok, lower) {
			return true
		}
	}
	return false
}

// foldEq compares b with lower, which is lower-case ASCII, ignoring case.
func foldEq(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// b2s views b as a string without copying, for lookups that do not keep
// it: route matching on the request's Host and path, which fasthttp owns
// until the handler returns.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
