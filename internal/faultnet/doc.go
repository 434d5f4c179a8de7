// Package faultnet injects network faults between processes on one
// machine, with TCP proxies in user space (no netem, no root): partitions,
// resets, latency and lost links, for Jepsen-style tests of a Gregor
// cluster whose nodes all listen on 127.0.0.1.
//
// # Faults
//
// A [Proxy] listens on 127.0.0.1 and forwards each accepted connection to
// its target, dialled afresh per connection (the target need not be up
// when the proxy starts; a failed dial resets the accepted connection).
//
//   - Cut: a partition. Open connections pass nothing either way (not
//     even a FIN) and stay open, so peers see timeouts, never errors.
//     New connections are accepted but held: the target never sees them.
//     Because the proxy accepts, a dial through a cut link succeeds where
//     a real partition would time out the connect; the first request
//     then times out instead. A writer on a cut link keeps succeeding
//     until the kernel's socket buffers are full (megabytes on
//     loopback), as with a real partition: only reads and deadlines
//     notice it.
//   - Heal: new connections are forwarded again, and every blackholed
//     connection is reset, as a healed network answers dead TCP state,
//     so peers reconnect. Delay and drop rate are kept.
//   - Reset: every open connection is reset at once (RST both ways); the
//     proxy keeps accepting.
//   - SetDelay: each chunk is written on d after it was read, in order:
//     latency, not a bandwidth limit.
//   - SetDropRate: each chunk blackholes its connection with probability
//     p, as Cut does (TCP has no partial loss: a lost link stalls the
//     stream until the peer times out). Seed makes it repeatable.
//
// Stats counts connections and bytes each way, for assertions. A [Net]
// names its proxies ("links"), cuts and heals them by name or path.Match
// pattern (Isolate("2->*", "*->2")) and describes its faults for test logs.
//
// # A Gregor cluster on one machine
//
// Every node's traffic comes from 127.0.0.1, so a proxy cannot tell who
// dialled it: a link is a proxy that only one kind of dialler is given.
// Pick the nodes' real ports first (internal/freeport), start the links,
// then write each node's server.properties with the links' addresses.
// There are three kinds of traffic.
//
// Controller traffic, proxied pairwise. Each node reads
// controller.quorum.voters from its own server.properties, and only the
// voter ids must agree between nodes; the addresses may differ. Give node
// i its own entry at its real controller listener and every other voter j
// at the link "i->j", whose target is j's controller listener. For node
// 1 of three:
//
//	controller.quorum.voters=1@127.0.0.1:<node 1 CONTROLLER>,2@<"1->2">,3@<"1->3">
//
// A node dials every other voter with raft messages (each connection
// carries one direction), and its broker registration, heartbeats and
// forwarded admin requests dial the active controller at the same voter
// address, so "i->j" carries everything i sends to j's controller
// listener, and the replies. Cutting "1->2" alone is an asymmetric
// partition; cutting "i->j" and "j->i" for every j isolates i, which then
// loses the quorum (or its leadership) and, after
// broker.session.timeout.ms, is fenced as a broker.
//
// Client traffic, a link per broker. Link "client-j" targets j's client
// listener, and j advertises it (advertised.listeners=PLAINTEXT://<link>,
// listed first), while listeners keeps the real port. Clients bootstrap
// from the client links, and Metadata sends them back through them.
//
// Replication traffic, a link per destination broker. Followers fetch
// from a partition leader at its advertised address on the listener named
// by inter.broker.listener.name. Give each broker a listener of its own
// for it (say REPLICATION, mapped to PLAINTEXT in
// listener.security.protocol.map) and advertise it at the link "repl-j".
// The advertised address is the same for every follower, so "repl-j"
// carries every broker's fetches from j; a broker's own fetches from
// others go through their links.
//
// So "isolate leader 2 from the other brokers while clients still reach
// it" is
//
//	net.Isolate("2->*", "*->2", "repl-2")
//
// with "client-2" left alone, and net.HealAll() ends every fault. Log
// net.String() with the test's events.
package faultnet
