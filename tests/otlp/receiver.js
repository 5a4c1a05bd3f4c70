// An OTLP/HTTP trace receiver on loopback for tests/cli/otlp.sh. Each request body is checked
// against the official OTLP protobuf definitions as compiled by @opentelemetry/otlp-transformer
// (protobufjs): the JSON is read with the proto3 JSON mapping OTLP specifies (ids as hex),
// encoded to protobuf, decoded again and turned back into JSON, and the result must equal what
// was sent - an unknown field, a wrong type, an enum given as a name or a default value written
// out all break that. What was received is written as JSON lines: one per span (flattened) to
// --out, one per request to --requests, and every error to --errors.
//
// usage: node receiver.js MODULES_DIR STATE_DIR MODE   (MODE: ok | slow | fail | fast)
// fast (for bench/trace.sh) answers 200 at once and only counts requests into STATE_DIR/fast.
// It listens on 127.0.0.1:0 and writes the port into STATE_DIR/port.
'use strict';
const path = require('path');
const fs = require('fs');
const http = require('http');
const [modules, dir, mode] = process.argv.slice(2);
const Req = mode === 'fast' ? null : require(path.join(modules,
    '@opentelemetry/otlp-transformer/build/src/generated/root.js'))
    .opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const out = (f, v) => fs.appendFileSync(path.join(dir, f), JSON.stringify(v) + '\n');
const ID = { traceId: 32, spanId: 16, parentSpanId: 16 };

// hex ids <-> base64 (the proto3 JSON mapping of bytes), checking the hex on the way in
function ids(v, toB64, errs, where) {
    if (Array.isArray(v)) return v.map((x, i) => ids(x, toB64, errs, `${where}[${i}]`));
    if (!v || typeof v !== 'object') return v;
    const o = {};
    for (const [k, x] of Object.entries(v)) {
        if (k in ID && typeof x === 'string') {
            if (toB64) {
                const re = new RegExp(`^[0-9a-f]{${ID[k]}}$`);
                if (!re.test(x) || /^0+$/.test(x)) errs.push(`${where}.${k}: not ${ID[k]} lower-case hex digits, not all zero: ${x}`);
                o[k] = Buffer.from(x, 'hex').toString('base64');
            } else {
                o[k] = Buffer.from(x, 'base64').toString('hex');
            }
        } else {
            o[k] = ids(x, toB64, errs, `${where}.${k}`);
        }
    }
    return o;
}

function same(a, b, where, errs) {
    if (typeof a !== typeof b || Array.isArray(a) !== Array.isArray(b) || (a === null) !== (b === null)) {
        errs.push(`${where}: sent ${JSON.stringify(a)}, the protobuf round trip gives ${JSON.stringify(b)}`);
        return;
    }
    if (Array.isArray(a)) {
        if (a.length !== b.length) errs.push(`${where}: ${a.length} items, round trip ${b.length}`);
        a.forEach((x, i) => i < b.length && same(x, b[i], `${where}[${i}]`, errs));
    } else if (a && typeof a === 'object') {
        for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
            same(a[k], b[k], `${where}.${k}`, errs);
    } else if (a !== b) {
        errs.push(`${where}: sent ${JSON.stringify(a)}, round trip ${JSON.stringify(b)}`);
    }
}

function check(body, errs) {
    let msg;
    try { msg = JSON.parse(body); } catch (e) { errs.push(`not JSON: ${e.message}`); return null; }
    const conv = ids(msg, true, errs, '');
    const obj = Req.fromObject(conv);
    const bad = Req.verify(obj);
    if (bad) errs.push(`verify: ${bad}`);
    const back = Req.toObject(Req.decode(Req.encode(obj).finish()),
        { longs: String, enums: Number, bytes: String, defaults: false, arrays: false });
    same(msg, ids(back, false, errs, ''), '', errs);
    // what the mapping says beyond the types: times as decimal strings, enums in range
    for (const rs of msg.resourceSpans || [])
        for (const ss of rs.scopeSpans || [])
            for (const s of ss.spans || []) {
                for (const t of ['startTimeUnixNano', 'endTimeUnixNano'])
                    if (typeof s[t] !== 'string' || !/^[0-9]+$/.test(s[t])) errs.push(`span ${s.name}: ${t} not a decimal string`);
                if (!Number.isInteger(s.kind) || s.kind < 0 || s.kind > 5) errs.push(`span ${s.name}: kind ${s.kind}`);
                if (s.status && (!Number.isInteger(s.status.code) || s.status.code < 0 || s.status.code > 2)) errs.push(`span ${s.name}: status ${JSON.stringify(s.status)}`);
                if (BigInt(s.endTimeUnixNano) < BigInt(s.startTimeUnixNano)) errs.push(`span ${s.name}: ends before it starts`);
            }
    return msg;
}

function flat(v) {
    for (const k of ['stringValue', 'boolValue', 'doubleValue']) if (k in v) return v[k];
    if ('intValue' in v) return Number(v.intValue);
    return v;
}

let fast = 0;
process.on('SIGTERM', () => {
    if (mode === 'fast') fs.writeFileSync(path.join(dir, 'fast'), String(fast));
    process.exit(0);
});
const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        if (mode === 'fast') {
            fast++;
            res.writeHead(200, { 'Content-Type': 'application/json' });
            return res.end('{}');
        }
        const body = Buffer.concat(chunks).toString('utf8');
        const errs = [];
        if (req.method !== 'POST') errs.push(`method ${req.method}`);
        if ((req.headers['content-type'] || '').split(';')[0].trim() !== 'application/json')
            errs.push(`Content-Type ${req.headers['content-type']}`);
        const msg = check(body, errs);
        let n = 0;
        for (const rs of (msg && msg.resourceSpans) || []) {
            const resource = Object.fromEntries(((rs.resource || {}).attributes || []).map((a) => [a.key, flat(a.value)]));
            for (const ss of rs.scopeSpans || [])
                for (const s of ss.spans || []) {
                    n++;
                    out('spans', {
                        traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || '',
                        name: s.name, kind: s.kind, start: s.startTimeUnixNano, end: s.endTimeUnixNano,
                        status: s.status || {}, service: resource['service.name'], scope: (ss.scope || {}).name,
                        attrs: Object.fromEntries((s.attributes || []).map((a) => [a.key, flat(a.value)])),
                    });
                }
        }
        out('requests', { path: req.url, spans: n, headers: req.headers, errors: errs.length });
        for (const e of errs) out('errors', { path: req.url, error: e });
        if (mode === 'slow') return; // never answers: the exporter's timeout ends it
        res.writeHead(mode === 'fail' ? 503 : errs.length ? 400 : 200, { 'Content-Type': 'application/json' });
        res.end(errs.length ? JSON.stringify({ errors: errs }) : '{}');
    });
});
server.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(path.join(dir, 'port.tmp'), String(server.address().port));
    fs.renameSync(path.join(dir, 'port.tmp'), path.join(dir, 'port'));
});
