// The Node peers of bench_llm: the official `openai` and `ollama` clients making the same chat
// calls against the same scripted server (tests/helpers/fake_llm), 64 at a time.
//   node bench/llm_peers.mjs OPENAI_BASE OLLAMA_HOST N
// Prints one line per case: name<TAB>ns_per_call<TAB>-<TAB>N, and "# note" lines (bench/README.md).
import OpenAI from 'openai';
import { Ollama } from 'ollama';

const [openaiBase, ollamaHost, nArg] = process.argv.slice(2);
const N = Number(nArg || 2000);
const CONC = 64;
const ANSWER = 'Circuit breakers stop calls to a failing service until it recovers.';
const messages = [{ role: 'user', content: 'What does a circuit breaker do?' }];

const openai = new OpenAI({ baseURL: openaiBase, apiKey: 'sk-bench', maxRetries: 0 });
const ollama = new Ollama({ host: ollamaHost });

const calls = {
  'openai.plain': async () => {
    const r = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages });
    return r.choices[0].message.content;
  },
  'openai.stream': async () => {
    const s = await openai.chat.completions.create({
      model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    for await (const ch of s) text += ch.choices[0]?.delta?.content || '';
    return text;
  },
  'ollama.plain': async () => {
    const r = await ollama.chat({ model: 'llama3.2', messages });
    return r.message.content;
  },
  'ollama.stream': async () => {
    const s = await ollama.chat({ model: 'llama3.2', messages, stream: true });
    let text = '';
    for await (const ch of s) text += ch.message.content;
    return text;
  },
};

async function pass(fn, n) {
  let next = 0, bad = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      if ((await fn()) !== ANSWER) bad++;
    }
  };
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: CONC }, worker));
  const c1 = process.cpuUsage(c0);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  return { ns, cpuUs: (c1.user + c1.system) / n, bad };
}

for (const [name, fn] of Object.entries(calls)) {
  await pass(fn, Math.ceil(N / 10));
  let best = null;
  for (let r = 0; r < 3; r++) {
    const p = await pass(fn, N);
    if (p.bad) { console.log(`# FAIL\tnode.${name}: ${p.bad} wrong answers`); break; }
    if (!best || p.ns < best.ns) best = p;
  }
  if (best) {
    console.log(`llm.${name}.c64.node\t${best.ns.toFixed(2)}\t-\t${N}`);
    console.log(`# note\tllm.${name}.c64.node: ${Math.round(1e9 / best.ns)} calls/s, client CPU ${best.cpuUs.toFixed(1)} us per call`);
  }
}
