#!/usr/bin/env node
// KafkaJS (npm kafkajs 2.2.4) against the broker in $BOOTSTRAP.
//
//   cd test/compat/kafkajs && npm ci && BOOTSTRAP=127.0.0.1:9092 node suite.js
//
// Admin: describeCluster, create/list topics, fetchTopicMetadata,
// describeConfigs, alterConfigs (which replaces a topic's whole override
// set, as in Kafka), createPartitions, fetchTopicOffsets, deleteTopics.
// Producer: every codec KafkaJS can use here -- none and gzip built in,
// snappy (kafkajs-snappy) and lz4 (kafkajs-lz4); zstd is SKIPped, see
// ZSTD_SKIP -- with keys, repeated header keys, empty and null values and
// explicit timestamps, offsets checked in the send results. The idempotent
// producer: offsets contiguous in send order, and every batch read back
// carries its producer id with sequence = offset.
// Consumer (needs GREGOR_COMPAT_GROUPS=1; KafkaJS has no consumer without a
// group): one group from the beginning over all of the above, compared
// field by field, with the codec each batch was decompressed with counted;
// then two consumers in one group splitting three partitions, every record
// once, and the group's committed offsets through admin.fetchOffsets equal
// to the end offsets, before and after both leave.
//
// Output: PASS/FAIL/SKIP per check, then exactly one line "N passed, N
// failed"; exit status 1 if any check failed.
//
// Environment: BOOTSTRAP (required), GREGOR_COMPAT_GROUPS=1,
// COMPAT_ONLY=regex, COMPAT_TIMEOUT (seconds per check, default 30),
// COMPAT_DEBUG=1 (KafkaJS debug log to stderr).
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const crypto = require('crypto')
const net = require('net')

const BOOTSTRAP = process.env.BOOTSTRAP
if (!BOOTSTRAP) {
  console.error('kafkajs: BOOTSTRAP (host:port) is not set')
  console.log('0 passed, 1 failed')
  process.exit(2)
}
let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  console.error(`kafkajs: ${e.message}\n(run npm ci in test/compat/kafkajs, or test/compat/install.sh)`)
  console.log('0 passed, 1 failed')
  process.exit(2)
}
const { Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes, AssignerProtocol } = kafkajs

const GROUPS = process.env.GREGOR_COMPAT_GROUPS === '1'
const ONLY = process.env.COMPAT_ONLY ? new RegExp(process.env.COMPAT_ONLY) : null
const TIMEOUT_MS = Number(process.env.COMPAT_TIMEOUT || 30) * 1000
const NONCE = crypto.randomBytes(3).toString('hex')
const ZSTD_SKIP =
  'no usable zstd codec: @kafkajs/zstd 0.1.1 depends on cppzst 2.0.6, whose native build fails ' +
  "against Node 20's headers (they need C++17), so it is not installed"

// ------------------------------------------------------------------ harness

let passed = 0
let failed = 0
const failures = []

class CheckFailed extends Error {}

function expect(cond, msg) {
  if (!cond) throw new CheckFailed(msg)
}

function expectEq(got, want, what) {
  const g = JSON.stringify(got)
  const w = JSON.stringify(want)
  if (g !== w) throw new CheckFailed(`${what}: got ${g}, want ${w}`)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await pred()
    if (v) return v
    if (Date.now() > deadline) throw new CheckFailed(`timed out after ${ms / 1000}s waiting for ${what}`)
    await sleep(100)
  }
}

function reachable() {
  const i = BOOTSTRAP.lastIndexOf(':')
  return new Promise(resolve => {
    const s = net.connect({ host: BOOTSTRAP.slice(0, i), port: Number(BOOTSTRAP.slice(i + 1)) })
    const done = ok => {
      s.destroy()
      resolve(ok)
    }
    s.setTimeout(3000, () => done(false))
    s.once('connect', () => done(true))
    s.once('error', () => done(false))
  })
}

// check runs fn as check `name` within its time budget. A check that
// overruns is reported and abandoned; the process exits at the end anyway.
async function check(name, fn, timeoutMs = TIMEOUT_MS) {
  if (ONLY && !ONLY.test(name)) return
  if (!(await reachable())) {
    failed++
    failures.push(`${name}: broker ${BOOTSTRAP} unreachable`)
    console.log(`FAIL ${name}: broker ${BOOTSTRAP} unreachable`)
    return
  }
  const started = Date.now()
  let timer
  const overrun = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`check exceeded its ${timeoutMs / 1000}s timeout`)), timeoutMs)
  })
  try {
    await Promise.race([fn(), overrun])
    passed++
    console.log(`PASS ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`)
  } catch (e) {
    failed++
    const reason = e instanceof CheckFailed ? e.message : `${e.name}: ${e.message}${e.type ? ` [${e.type}]` : ''}`
    failures.push(`${name}: ${reason}`)
    console.log(`FAIL ${name} (${((Date.now() - started) / 1000).toFixed(1)}s): ${reason}`)
    if (!(e instanceof CheckFailed)) console.error(`---- ${name} ----\n${e.stack}`)
  } finally {
    clearTimeout(timer)
  }
}

function skip(name, why) {
  if (ONLY && !ONLY.test(name)) return
  console.log(`SKIP ${name}: ${why}`)
}

function finish() {
  console.error(`codec calls (compress/decompress): ${JSON.stringify(codecCalls)}`)
  if (failures.length) {
    console.log('-- kafkajs failures --')
    for (const f of failures) console.log(`  ${f}`)
  }
  console.log(`${passed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}

const topicName = name => `kafkajs-${NONCE}-${name}`

// ------------------------------------------------------------------ codecs

// Every codec KafkaJS resolves goes through a counting wrapper, so checks
// can tell which codec the producer compressed with and which one the
// consumer had to decompress what the broker returned with.
const codecCalls = {}
function countCodec(type, name) {
  const make = CompressionCodecs[type]
  codecCalls[name] = { compress: 0, decompress: 0 }
  CompressionCodecs[type] = () => {
    const c = make()
    return {
      compress: async encoder => {
        codecCalls[name].compress++
        return c.compress(encoder)
      },
      decompress: async buffer => {
        codecCalls[name].decompress++
        return c.decompress(buffer)
      },
    }
  }
}

const codecLoadErrors = {}
try {
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
} catch (e) {
  codecLoadErrors.snappy = e.message
}
try {
  const LZ4Codec = require('kafkajs-lz4')
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
} catch (e) {
  codecLoadErrors.lz4 = e.message
}
countCodec(CompressionTypes.GZIP, 'gzip')
if (!codecLoadErrors.snappy) countCodec(CompressionTypes.Snappy, 'snappy')
if (!codecLoadErrors.lz4) countCodec(CompressionTypes.LZ4, 'lz4')

const CODECS = [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
]

// ------------------------------------------------------------------ client

const kafkaLogLevel = process.env.COMPAT_DEBUG === '1' ? logLevel.DEBUG : logLevel.ERROR
const kafka = new Kafka({
  clientId: 'gregor-compat-kafkajs',
  brokers: [BOOTSTRAP],
  logLevel: kafkaLogLevel,
  logCreator: () => ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    console.error(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}`)
  },
  retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2000 },
})
const admin = kafka.admin()

// records: what one codec topic gets. Partition 0 has the edge cases,
// partition 1 twenty plain records. Header values are Buffers; a key
// repeated in the headers is given (and comes back) as an array.
function codecRecords() {
  const base = Date.now() - 60000
  const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const big = Buffer.from('gregor kafkajs compat 0123456789 '.repeat(6200))
  const rs = [
    { partition: 0, key: Buffer.from('k0'), value: Buffer.from('v0'), headers: { h: [Buffer.from('a'), Buffer.from('b')] } },
    { partition: 0, key: null, value: Buffer.from('null key') },
    { partition: 0, key: Buffer.alloc(0), value: Buffer.alloc(0) },
    { partition: 0, key: Buffer.from('tombstone'), value: null },
    { partition: 0, key: Buffer.from('bin'), value: bin, headers: { empty: Buffer.alloc(0), bin: bin.subarray(0, 16) } },
    { partition: 0, key: Buffer.from('big'), value: big },
    { partition: 0, key: null, value: null, headers: { only: Buffer.from('headers') } },
  ]
  for (let i = 0; i < 20; i++) {
    rs.push({
      partition: 1,
      key: Buffer.from(`p1-${String(i).padStart(2, '0')}`),
      value: Buffer.from(`value ${i} ${'x'.repeat(i)}`),
      headers: { i: Buffer.from(String(i)) },
    })
  }
  rs.forEach((r, i) => {
    r.timestamp = String(base + i)
    r.headers = r.headers || {}
  })
  return rs
}

function sameBytes(got, want, what) {
  if (want === null) {
    expect(got === null, `${what}: got ${JSON.stringify(String(got).slice(0, 40))}, want null`)
    return
  }
  expect(got !== null, `${what}: got null, want ${JSON.stringify(want.toString().slice(0, 40))}`)
  expect(Buffer.isBuffer(got) && got.equals(want),
    `${what}: got ${got.length} bytes ${JSON.stringify(got.toString().slice(0, 40))}, want ${want.length} bytes ${JSON.stringify(want.toString().slice(0, 40))}`)
}

function compareMessage(where, m, want) {
  sameBytes(m.key, want.key, `${where} key`)
  sameBytes(m.value, want.value, `${where} value`)
  expectEq(m.timestamp, want.timestamp, `${where} timestamp`)
  expectEq(Object.keys(m.headers).sort(), Object.keys(want.headers).sort(), `${where} header keys`)
  for (const [k, v] of Object.entries(want.headers)) {
    const got = m.headers[k]
    if (Array.isArray(v)) {
      expect(Array.isArray(got) && got.length === v.length, `${where} header ${k}: got ${JSON.stringify(got)}, want ${v.length} values`)
      v.forEach((x, i) => sameBytes(got[i], x, `${where} header ${k}[${i}]`))
    } else {
      sameBytes(got, v, `${where} header ${k}`)
    }
  }
}

// ------------------------------------------------------------------ checks

async function adminChecks() {
  const t = topicName('admin')
  let brokerId = -1

  await check('admin_describe_cluster', async () => {
    const c = await admin.describeCluster()
    // COMPAT_BROKERS: the cluster's size (cluster.sh sets 3); the bootstrap
    // broker and the controller must be among the brokers.
    expectEq(c.brokers.length, Number(process.env.COMPAT_BROKERS || 1), 'brokers')
    const [host, port] = [BOOTSTRAP.slice(0, BOOTSTRAP.lastIndexOf(':')), Number(BOOTSTRAP.slice(BOOTSTRAP.lastIndexOf(':') + 1))]
    const self = c.brokers.find(b => b.host === host && b.port === port)
    expect(self, `no broker at ${host}:${port} in ${JSON.stringify(c.brokers)}`)
    expect(c.brokers.some(b => b.nodeId === c.controller), `controller ${c.controller} is not one of the brokers`)
    expect(typeof c.clusterId === 'string' && c.clusterId.length > 0, `cluster id ${JSON.stringify(c.clusterId)}`)
    brokerId = self.nodeId
  })

  await check('admin_create_topic', async () => {
    const created = await admin.createTopics({
      topics: [{
        topic: t, numPartitions: 3, replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: '123456789' }, { name: 'max.message.bytes', value: '2000000' }],
      }],
    })
    expectEq(created, true, 'createTopics result')
    // KafkaJS turns TOPIC_ALREADY_EXISTS into false.
    const again = await admin.createTopics({ topics: [{ topic: t, numPartitions: 3, replicationFactor: 1 }] })
    expectEq(again, false, 'second createTopics result (TOPIC_ALREADY_EXISTS)')
  })

  await check('admin_list_topics', async () => {
    const topics = await admin.listTopics()
    expect(topics.includes(t), `${t} missing from listTopics (${topics.length} topics)`)
  })

  await check('admin_fetch_topic_metadata', async () => {
    expect(brokerId >= 0, 'needs admin_describe_cluster')
    const { topics } = await admin.fetchTopicMetadata({ topics: [t] })
    expectEq(topics.map(x => x.name), [t], 'topics')
    const parts = topics[0].partitions.slice().sort((a, b) => a.partitionId - b.partitionId)
    // In a cluster (COMPAT_BROKERS > 1) any broker may lead; it is still the
    // only replica and in-sync replica.
    const cluster = Number(process.env.COMPAT_BROKERS || 1) > 1
    expectEq(parts.map(p => [p.partitionId, p.partitionErrorCode, p.leader, p.replicas, p.isr]),
      parts.map((p, i) => { const l = cluster && p.leader >= 0 ? p.leader : brokerId; return [i, 0, l, [l], [l]] }),
      'partitions [id, error, leader, replicas, isr]')
  })

  await check('admin_describe_configs', async () => {
    const { resources } = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: t }], includeSynonyms: false,
    })
    expectEq(resources.length, 1, 'resources')
    expectEq(resources[0].errorCode, 0, 'resource error code')
    const byName = Object.fromEntries(resources[0].configEntries.map(e => [e.configName, e]))
    for (const [name, value] of [['retention.ms', '123456789'], ['max.message.bytes', '2000000']]) {
      const e = byName[name]
      expect(e, `${name} missing from ${resources[0].configEntries.length} entries`)
      expectEq([e.configValue, e.isDefault, e.configSource], [value, false, 1], `${name} [value, isDefault, source]`)
    }
    const cp = byName['cleanup.policy']
    expect(cp, 'cleanup.policy missing')
    expectEq([cp.configValue, cp.isDefault], ['delete', true], 'cleanup.policy [value, isDefault]')
    // Only the names asked for.
    const sel = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: t, configNames: ['retention.ms', 'segment.bytes'] }],
    })
    expectEq(sel.resources[0].configEntries.map(e => e.configName).sort(), ['retention.ms', 'segment.bytes'], 'configNames filter')
  })

  await check('admin_alter_configs_replaces_overrides', async () => {
    // AlterConfigs (not incremental) sets the complete override set: the
    // max.message.bytes override not named here goes back to its default.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: t, configEntries: [{ name: 'retention.ms', value: '987654' }] }],
    })
    const { resources } = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: t, configNames: ['retention.ms', 'max.message.bytes'] }],
    })
    const byName = Object.fromEntries(resources[0].configEntries.map(e => [e.configName, e]))
    expectEq([byName['retention.ms'].configValue, byName['retention.ms'].isDefault], ['987654', false], 'retention.ms [value, isDefault]')
    const mb = byName['max.message.bytes']
    expect(mb.isDefault && mb.configValue !== '2000000',
      `max.message.bytes after AlterConfigs without it: value ${mb.configValue} isDefault ${mb.isDefault}, want the default back`)
  })

  await check('admin_create_partitions', async () => {
    await admin.createPartitions({ topicPartitions: [{ topic: t, count: 5 }] })
    const { topics } = await admin.fetchTopicMetadata({ topics: [t] })
    expectEq(topics[0].partitions.map(p => p.partitionId).sort(), [0, 1, 2, 3, 4], 'partition ids after createPartitions(5)')
    let err = null
    try {
      await admin.createPartitions({ topicPartitions: [{ topic: t, count: 4 }] })
    } catch (e) {
      err = e
    }
    expect(err && err.type === 'INVALID_PARTITIONS', `createPartitions(4): got ${err ? `${err.type}: ${err.message}` : 'success'}, want INVALID_PARTITIONS`)
    const offsets = await admin.fetchTopicOffsets(t)
    expectEq(offsets.map(o => [o.partition, o.low, o.high]).sort((a, b) => a[0] - b[0]),
      [0, 1, 2, 3, 4].map(p => [p, '0', '0']), 'fetchTopicOffsets [partition, low, high] of the empty topic')
  })

  await check('admin_delete_topic', async () => {
    await admin.deleteTopics({ topics: [t] })
    await waitUntil(async () => !(await admin.listTopics()).includes(t), 10000, `${t} to leave listTopics`)
  })
}

// produced[codec] = { topic, records } for the consume checks.
const produced = {}
let idem = null

async function produceChecks() {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    for (const [name, type] of CODECS) {
      await check(`produce_codec_${name}`, async () => {
        if (codecLoadErrors[name]) throw new CheckFailed(`codec package did not load: ${codecLoadErrors[name]}`)
        const t = topicName(`codec-${name}`)
        await admin.createTopics({ topics: [{ topic: t, numPartitions: 2, replicationFactor: 1 }] })
        const records = codecRecords()
        const before = codecCalls[name] ? codecCalls[name].compress : 0
        const res = await producer.send({
          topic: t, acks: -1, compression: type,
          messages: records.map(r => ({ partition: r.partition, key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp })),
        })
        expectEq(res.map(r => [r.topicName, r.partition, r.errorCode, r.baseOffset]).sort((a, b) => a[1] - b[1]),
          [[t, 0, 0, '0'], [t, 1, 0, '0']], 'send results [topic, partition, error, baseOffset]')
        if (codecCalls[name]) expect(codecCalls[name].compress > before, `the ${name} codec was never asked to compress`)
        const offsets = await admin.fetchTopicOffsets(t)
        expectEq(offsets.map(o => [o.partition, o.low, o.high]).sort((a, b) => a[0] - b[0]),
          [[0, '0', '7'], [1, '0', '20']], 'fetchTopicOffsets [partition, low, high]')
        produced[name] = { topic: t, records }
      })
    }
    skip('produce_codec_zstd', ZSTD_SKIP)
  } finally {
    await producer.disconnect()
  }

  await check('idempotent_producer_offsets_contiguous', async () => {
    const t = topicName('idempotent')
    await admin.createTopics({ topics: [{ topic: t, numPartitions: 3, replicationFactor: 1 }] })
    const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
    await p.connect()
    try {
      const next = [0, 0, 0]
      let i = 0
      // Ten sends of 30 (10 per partition), then one sendBatch of 30.
      for (let s = 0; s < 10; s++) {
        const messages = []
        for (let k = 0; k < 30; k++, i++) messages.push({ partition: i % 3, key: `idem-${i}`, value: `value-${i}` })
        const res = await p.send({ topic: t, acks: -1, messages })
        for (const r of res.sort((a, b) => a.partition - b.partition)) {
          expectEq([r.errorCode, r.baseOffset], [0, String(next[r.partition])], `send ${s} partition ${r.partition} [error, baseOffset]`)
          next[r.partition] += 10
        }
      }
      const messages = []
      for (let k = 0; k < 30; k++, i++) messages.push({ partition: i % 3, key: `idem-${i}`, value: `value-${i}` })
      const res = await p.sendBatch({ acks: -1, topicMessages: [{ topic: t, messages }] })
      for (const r of res.sort((a, b) => a.partition - b.partition)) {
        expectEq([r.errorCode, r.baseOffset], [0, String(next[r.partition])], `sendBatch partition ${r.partition} [error, baseOffset]`)
        next[r.partition] += 10
      }
      const offsets = await admin.fetchTopicOffsets(t)
      expectEq(offsets.map(o => [o.partition, o.high]).sort((a, b) => a[0] - b[0]), [[0, '110'], [1, '110'], [2, '110']], 'end offsets')
      idem = { topic: t, n: i }
    } finally {
      await p.disconnect()
    }
  })
}

// consumeAll: one group from the beginning over every codec topic and the
// idempotent topic, until each partition's records are in.
const consumed = {} // topic -> partition -> [message]
const batchCodecs = {}

async function consumeChecks() {
  const topics = Object.values(produced).map(x => x.topic)
  if (idem) topics.push(idem.topic)
  let consumeOk = false

  await check('consume_from_beginning_all_topics', async () => {
    expect(topics.length > 0, 'nothing was produced')
    const want = {}
    for (const { topic, records } of Object.values(produced)) {
      want[topic] = [0, 1].map(p => records.filter(r => r.partition === p).length)
    }
    if (idem) want[idem.topic] = [0, 1, 2].map(() => idem.n / 3)
    const total = Object.values(want).flat().reduce((a, b) => a + b, 0)
    const before = JSON.parse(JSON.stringify(codecCalls))
    const c = kafka.consumer({ groupId: topicName('from-beginning'), maxWaitTimeInMs: 500 })
    await c.connect()
    try {
      await c.subscribe({ topics, fromBeginning: true })
      let n = 0
      await c.run({
        eachMessage: async ({ topic, partition, message }) => {
          const byP = (consumed[topic] = consumed[topic] || {})
          ;(byP[partition] = byP[partition] || []).push(message)
          n++
        },
      })
      await waitUntil(() => n >= total, 25000, `${total} records (have ${n})`)
      await sleep(300)
      expectEq(n, total, 'records consumed')
    } finally {
      await c.disconnect()
    }
    for (const [name, calls] of Object.entries(codecCalls)) batchCodecs[name] = calls.decompress - before[name].decompress
    consumeOk = true
  }, 45000)

  for (const [name] of CODECS) {
    if (!produced[name]) continue
    await check(`consume_codec_${name}_exact`, async () => {
      expect(consumeOk, 'needs consume_from_beginning_all_topics')
      const { topic, records } = produced[name]
      for (const p of [0, 1]) {
        const want = records.filter(r => r.partition === p)
        const got = (consumed[topic] || {})[p] || []
        expectEq(got.length, want.length, `partition ${p} records`)
        got.forEach((m, i) => {
          expectEq(m.offset, String(i), `partition ${p} record ${i} offset`)
          compareMessage(`partition ${p} offset ${i}`, m, want[i])
        })
      }
      // The consumer had to use the producer's codec: the broker kept it.
      if (name !== 'none') {
        expect(batchCodecs[name] > 0, `no ${name} batch was decompressed while consuming (decompress calls per codec: ${JSON.stringify(batchCodecs)})`)
      }
    })
  }

  if (idem) {
    await check('idempotent_batches_carry_producer_id_and_sequences', async () => {
      expect(consumeOk, 'needs consume_from_beginning_all_topics')
      let pid = null
      for (const p of [0, 1, 2]) {
        const got = (consumed[idem.topic] || {})[p] || []
        expectEq(got.length, idem.n / 3, `partition ${p} records`)
        got.forEach((m, i) => {
          const want = i * 3 + p
          expectEq([m.offset, String(m.key), String(m.value)], [String(i), `idem-${want}`, `value-${want}`], `partition ${p} record ${i}`)
          const b = m.batchContext
          if (pid === null) pid = b.producerId
          expect(b.producerId === pid && Number(b.producerId) >= 0 && b.producerEpoch >= 0,
            `partition ${p} offset ${i}: producer id ${b.producerId} epoch ${b.producerEpoch} (first batch had ${pid})`)
          // One producer from offset 0: each batch's first sequence is its first offset.
          expectEq(String(b.firstSequence), String(b.firstOffset), `partition ${p} batch at ${b.firstOffset} first sequence`)
        })
      }
    })
  }
}

async function groupChecks() {
  const t = topicName('group')
  const groupId = topicName('group-g')
  const perPartition = 30
  let ok = false

  await check('group_two_consumers_split_partitions', async () => {
    await admin.createTopics({ topics: [{ topic: t, numPartitions: 3, replicationFactor: 1 }] })
    const members = ['a', 'b'].map(name => ({
      name, joins: [], seen: [],
      consumer: kafka.consumer({ groupId, maxWaitTimeInMs: 500, heartbeatInterval: 500 }),
    }))
    try {
      for (const m of members) {
        m.consumer.on(m.consumer.events.GROUP_JOIN, e => m.joins.push(e.payload))
        await m.consumer.connect()
        await m.consumer.subscribe({ topics: [t], fromBeginning: true })
      }
      await Promise.all(members.map(m => m.consumer.run({
        eachMessage: async ({ partition, message }) => {
          m.seen.push({ partition, offset: message.offset, key: String(message.key), value: String(message.value) })
        },
      })))
      const claims = m => {
        const j = m.joins[m.joins.length - 1]
        return j ? (j.memberAssignment[t] || []).slice().sort() : []
      }
      await waitUntil(() => {
        const all = [...claims(members[0]), ...claims(members[1])].sort()
        return claims(members[0]).length > 0 && claims(members[1]).length > 0 && JSON.stringify(all) === '[0,1,2]'
      }, 20000, `both consumers to split partitions 0-2 (a ${JSON.stringify(claims(members[0]))}, b ${JSON.stringify(claims(members[1]))})`)
      const joinsBefore = members.map(m => m.joins.length)

      const producer = kafka.producer({ allowAutoTopicCreation: false })
      await producer.connect()
      try {
        const messages = []
        for (let i = 0; i < perPartition; i++) {
          for (let p = 0; p < 3; p++) messages.push({ partition: p, key: `g-${p}-${i}`, value: `group value ${p}/${i}` })
        }
        await producer.send({ topic: t, acks: -1, messages })
      } finally {
        await producer.disconnect()
      }
      const total = 3 * perPartition
      await waitUntil(() => members[0].seen.length + members[1].seen.length >= total, 20000,
        `${total} records (a ${members[0].seen.length}, b ${members[1].seen.length})`)
      await sleep(500)
      expectEq(members.map(m => m.joins.length), joinsBefore, 'group joins per member (an unexpected rebalance)')

      const where = new Map()
      for (const m of members) {
        for (const r of m.seen) {
          const k = `${r.partition}/${r.offset}`
          expect(!where.has(k), `partition ${r.partition} offset ${r.offset} consumed twice (by ${where.get(k)} and ${m.name})`)
          where.set(k, m.name)
          expect(claims(m).includes(r.partition), `${m.name} consumed partition ${r.partition} outside its assignment ${JSON.stringify(claims(m))}`)
          expectEq([r.key, r.value], [`g-${r.partition}-${r.offset}`, `group value ${r.partition}/${r.offset}`], `partition ${r.partition} offset ${r.offset}`)
        }
      }
      expectEq(where.size, total, 'distinct records consumed')

      // The broker's view of the group while both are in it.
      const { groups } = await admin.describeGroups([groupId])
      expectEq(groups.length, 1, 'describeGroups groups')
      const g = groups[0]
      expectEq([g.errorCode, g.state, g.protocolType, g.protocol], [0, 'Stable', 'consumer', 'RoundRobinAssigner'],
        'group [error, state, protocolType, protocol]')
      expectEq(g.members.length, 2, 'group members')
      const byId = Object.fromEntries(g.members.map(x => [x.memberId, x]))
      for (const m of members) {
        const j = m.joins[m.joins.length - 1]
        const d = byId[j.memberId]
        expect(d, `member ${m.name} (${j.memberId}) not in describeGroups`)
        const asg = AssignerProtocol.MemberAssignment.decode(d.memberAssignment)
        expectEq((asg.assignment[t] || []).slice().sort(), claims(m), `member ${m.name} assignment as the broker holds it`)
      }

      // KafkaJS commits after each batch; the committed offsets must reach
      // the end offsets.
      const ends = Object.fromEntries((await admin.fetchTopicOffsets(t)).map(o => [o.partition, o.high]))
      expectEq(ends, { 0: String(perPartition), 1: String(perPartition), 2: String(perPartition) }, 'end offsets')
      let last
      await waitUntil(async () => {
        last = await admin.fetchOffsets({ groupId, topics: [t] })
        return last.length === 1 && last[0].partitions.every(p => p.offset === ends[p.partition])
      }, 10000, `committed offsets to reach the end offsets (last ${JSON.stringify(last)})`)
      ok = true
    } finally {
      for (const m of members) await m.consumer.disconnect()
    }
  }, 60000)

  await check('group_fetch_offsets_after_leave', async () => {
    expect(ok, 'needs group_two_consumers_split_partitions')
    const offsets = await admin.fetchOffsets({ groupId, topics: [t] })
    expectEq(offsets.map(x => [x.topic, x.partitions.map(p => [p.partition, p.offset]).sort((a, b) => a[0] - b[0])]),
      [[t, [[0, '30'], [1, '30'], [2, '30']]]], 'admin.fetchOffsets [topic, [partition, offset]]')
    const { groups } = await admin.describeGroups([groupId])
    expectEq([groups[0].state, groups[0].members.length], ['Empty', 0], 'group [state, members] after both left')
    const { groups: listed } = await admin.listGroups()
    const mine = listed.find(x => x.groupId === groupId)
    expect(mine && mine.protocolType === 'consumer', `listGroups entry ${JSON.stringify(mine)}`)
  })
}

// A fetch limit that falls inside a batch: the broker fills the limit and
// cuts the last batch, as Kafka does; the client must drop that partial
// batch and fetch it again, losing and repeating nothing.
async function cutBatchChecks() {
  await check('consume_with_fetch_limits_inside_batches', async () => {
    const t = topicName('cut-batches')
    await admin.createTopics({ topics: [{ topic: t, numPartitions: 1, replicationFactor: 1 }] })
    const p = kafka.producer({ allowAutoTopicCreation: false })
    await p.connect()
    const total = 300
    try {
      // 30 sends of 10 records of about 500 bytes: batches of about 5 KB.
      for (let s = 0; s < 30; s++) {
        const messages = []
        for (let k = 0; k < 10; k++) messages.push({ value: `${s * 10 + k}:` + 'x'.repeat(500) })
        await p.send({ topic: t, acks: -1, messages })
      }
    } finally {
      await p.disconnect()
    }
    const got = []
    const c = kafka.consumer({ groupId: topicName('cut-batches'), maxWaitTimeInMs: 200, maxBytesPerPartition: 8000, maxBytes: 8000 })
    await c.connect()
    try {
      await c.subscribe({ topics: [t], fromBeginning: true })
      await c.run({ eachMessage: async ({ message }) => { got.push(message) } })
      await waitUntil(() => got.length >= total, 25000, `${total} records (have ${got.length})`)
      await sleep(300)
    } finally {
      await c.disconnect()
    }
    expectEq(got.length, total, 'records consumed')
    got.forEach((m, i) => {
      expectEq(m.offset, String(i), `record ${i} offset`)
      expectEq(m.value.toString().split(':')[0], String(i), `record ${i} value`)
    })
  }, 45000)
}

async function main() {
  await admin.connect()
  await adminChecks()
  await produceChecks()
  if (GROUPS) {
    await consumeChecks()
    await cutBatchChecks()
    await groupChecks()
  } else {
    skip('consume_*, group_*', 'KafkaJS consumers always use a group; GREGOR_COMPAT_GROUPS is not 1')
  }
  await admin.disconnect().catch(() => {})
  finish()
}

main().catch(e => {
  console.error(e.stack)
  failed++
  failures.push(`suite: ${e.message}`)
  finish()
})
