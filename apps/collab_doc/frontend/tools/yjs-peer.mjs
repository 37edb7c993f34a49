// A headless editor using the stock yjs + y-websocket client, driven over stdin/stdout
// (one JSON command per line, one JSON answer per line) by the interop tests and usable
// by hand:  node tools/yjs-peer.mjs ws://127.0.0.1:8000/ws/docs <name> [origin]
//
// Commands: {"op":"connect"} (waits for sync), {"op":"disconnect"}, {"op":"text"},
// {"op":"edits","ops":[[index,"ins",text]|[index,"del",n],...],"pause_ms":2}
// (indexes clamped to the current length), {"op":"awareness"}, {"op":"quit"}.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WS from 'ws'
import readline from 'node:readline'

const [serverUrl, room, origin] = process.argv.slice(2)

class OriginWebSocket extends WS {
  constructor (url, protocols) { super(url, protocols, origin ? { origin } : {}) }
}

const doc = new Y.Doc()
const text = doc.getText('content')
const provider = new WebsocketProvider(serverUrl, room, doc, {
  WebSocketPolyfill: OriginWebSocket, connect: false, maxBackoffTime: 500, disableBc: true
})
provider.awareness.setLocalStateField('user', { name: `node-${doc.clientID}`, color: '#3158d4' })

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until (check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

const handlers = {
  async connect () {
    provider.connect()
    await until(() => provider.wsconnected && provider.synced, 15000, 'sync')
    return { ok: true, client_id: doc.clientID }
  },
  async disconnect () {
    provider.disconnect()
    await until(() => !provider.wsconnected, 5000, 'disconnect')
    return { ok: true }
  },
  async text () { return { text: text.toString(), synced: provider.synced } },
  async awareness () {
    return { states: Object.fromEntries([...provider.awareness.getStates()].map(([k, v]) => [k, v])) }
  },
  async edits ({ ops, pause_ms: pause = 0 }) {
    for (const [index, kind, arg] of ops) {
      const at = Math.min(index, text.length)
      if (kind === 'ins') text.insert(at, arg)
      else if (text.length > at) text.delete(at, Math.min(arg, text.length - at))
      if (pause) await sleep(Math.random() * pause)
    }
    return { ok: true, length: text.length }
  },
  async quit () {
    provider.destroy()
    setTimeout(() => process.exit(0), 50)
    return { ok: true }
  }
}

async function handle (line) {
  let answer
  try {
    const command = JSON.parse(line)
    answer = await handlers[command.op](command)
  } catch (error) {
    answer = { error: String(error && error.stack ? error.stack : error) }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}

// One command at a time, in order.
let chain = Promise.resolve()
const lines = readline.createInterface({ input: process.stdin })
lines.on('line', (line) => { chain = chain.then(() => handle(line)) })
lines.on('close', () => chain.then(() => { provider.destroy(); process.exit(0) }))
process.stdout.write(JSON.stringify({ ready: true }) + '\n')
