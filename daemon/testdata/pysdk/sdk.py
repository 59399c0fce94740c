"""Drives berthd with Docker's Python SDK as its users do; the Go test
TestDockerPythonSDK runs it with DOCKER_HOST set. Every check raises on
failure; the last line printed is "ok"."""

import time

import docker

started = time.time()
client = docker.from_env(version="auto")
old = docker.from_env(version="1.41")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# A network named as Docker allows, with a space.
net = client.networks.create("test 01", driver="bridge", labels={"suite": "pysdk"})
check(client.networks.get("test 01").name == "test 01", "network 'test 01' by name")

db = client.containers.run("busybox", "sleep 100000", name="db", network="test 01", detach=True)
db.reload()
db_ip = db.attrs["NetworkSettings"]["Networks"]["test 01"]["IPAddress"]
check(db_ip, "db has an address on 'test 01'")

# Links given per network, resolved by the embedded DNS.
web = client.containers.create("busybox", "sleep 100000", name="web", network="test 01")
net.disconnect(web)
net.connect(web, links=[("db", "database")])
web.start()
code, out = web.exec_run("nslookup database")
check(code == 0 and db_ip in out.decode(), "the link database resolves to db: %r" % out)

# Legacy fields at an old API version, for a container on the default bridge.
legacy = old.containers.run("busybox", "sleep 100000", name="legacy", detach=True)
legacy.reload()
ns = legacy.attrs["NetworkSettings"]
check(ns.get("IPAddress") and ns["IPAddress"] == ns["Networks"]["bridge"]["IPAddress"],
      "top-level IPAddress at API 1.41: %r" % ns.get("IPAddress"))
check(ns.get("Gateway") == ns["Networks"]["bridge"]["Gateway"], "top-level Gateway at API 1.41")

# Volumes: data written by one container is read by the next.
vol = client.volumes.create("pyvol", labels={"suite": "pysdk"})
client.containers.run("busybox", ["sh", "-c", "echo kept > /data/f"], volumes={"pyvol": {"bind": "/data", "mode": "rw"}}, remove=True)
out = client.containers.run("busybox", "cat /data/f", volumes=["pyvol:/data:ro"], remove=True)
check(out == b"kept\n", "the volume kept its data: %r" % out)
check([v.name for v in client.volumes.list(filters={"label": "suite=pysdk"})] == ["pyvol"], "volume list by label")

# Events since the start, until now: the network and containers made.
# A volume's event names it by its ID, as dockerd's do.
seen = [(e["Type"], e["Action"], e["Actor"]["Attributes"].get("name", e["Actor"]["ID"]))
        for e in client.events(since=int(started) - 1, until=int(time.time()) + 1, decode=True)]
check(("network", "create", "test 01") in seen, "network create event: %r" % seen[:20])
check(("container", "start", "db") in seen, "container start event")
check(("volume", "create", "pyvol") in seen, "volume create event")

# Clean-up as the SDK's own test suite does it: outside a swarm a forced
# leave gets 503, which the SDK takes for done; unforced, it is an error.
check(client.swarm.leave(force=True) is True, "forced swarm leave")
try:
    client.swarm.leave()
    raise AssertionError("swarm leave succeeded outside a swarm")
except docker.errors.APIError as e:
    check(e.status_code == 503 and "not part of a swarm" in str(e), "swarm leave: %s" % e)
for c in client.containers.list(all=True):
    c.remove(force=True)
check(client.containers.prune()["ContainersDeleted"] in (None, []), "nothing left to prune")
net.remove()
vol.remove()
check(not client.volumes.list(), "no volumes left")
check([n.name for n in client.networks.list()] and "test 01" not in [n.name for n in client.networks.list()], "network removed")
print("ok")
