// Package nettest gives integration tests their own machines: a fresh
// network namespace per test acting as the host, berthd started inside it as
// a child process with temporary --host, --root and --exec-root, further
// namespaces standing in for containers, and dial/listen from Go inside any
// of them. Everything is removed when the test ends, however it ends, so
// tests run in parallel and never touch the machine's own interfaces.
package nettest
