#!/usr/bin/env python3
"""A minimal Chrome DevTools Protocol client for the dashboard test (standard library only).

cdp.py PORT eval EXPR         print the value of a JavaScript expression in the first page
cdp.py PORT screenshot FILE   write a PNG of the first page
"""
import base64, json, os, socket, struct, sys, urllib.request


def page_ws(port):
    pages = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=30))
    for p in pages:
        if p.get("type") == "page":
            return p["webSocketDebuggerUrl"]
    sys.exit("cdp: no page")


class WS:
    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk:
                sys.exit("cdp: handshake failed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            sys.exit("cdp: handshake refused: %r" % head[:100])
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                sys.exit("cdp: connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        msg = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            msg += payload
            if b0 & 0x80:
                return msg.decode()


def call(ws, method, params, ident=[0]):
    ident[0] += 1
    ws.send(json.dumps({"id": ident[0], "method": method, "params": params}))
    while True:
        m = json.loads(ws.recv())
        if m.get("id") == ident[0]:
            if "error" in m:
                sys.exit("cdp: %s: %s" % (method, m["error"]))
            return m["result"]


def main():
    port, what, arg = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ws = WS(page_ws(port))
    if what == "eval":
        r = call(ws, "Runtime.evaluate", {"expression": arg, "returnByValue": True})
        print(r["result"].get("value", ""))
    elif what == "screenshot":
        r = call(ws, "Page.captureScreenshot", {"format": "png"})
        with open(arg, "wb") as f:
            f.write(base64.b64decode(r["data"]))
    else:
        sys.exit("cdp: eval or screenshot")


main()
