"""Checks of deploy/ that need a YAML parser or HTTP, run by `cargo xtask deploy-check` (deploy_check.rs)
with the Python of .tools/venv (PyYAML comes with kubernetes-validate).

    python deploy_check.py ROOT RENDERED_BASE BAO_BIN

1. the rendered kustomize base keeps the properties docs/deploy.md promises (replicas, probes, limits,
   non-root, ConfigMap/Secret split, PDB/HPA/Service/NetworkPolicy aimed at the gateway's pods, the
   migration Job in the first apply phase, no Secret);
2. deploy/compose.yaml parses, has two gateway replicas behind the balancer, the one-shot services
   before them, healthchecks, a required AURORA_INTERNAL_SECRET, no OpenBao dev mode, and every file
   it names exists;
3. deploy/openbao-policy.hcl names exactly the gateway's paths, and against a real OpenBao (dev server
   on a free loopback port) a token holding only that policy can do what the gateway does and nothing
   else.

Every problem is printed; the exit status is 1 when there is any.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

PROBLEMS = []
GATEWAY = "aurora-gateway"
# Settings that hold secrets: never literal in a manifest, never in the ConfigMap.
SECRET_KEYS = {
    "AURORA_DATABASE_URL",
    "AURORA_REDIS_URL",
    "AURORA_VAULT_TOKEN",
    "AURORA_INTERNAL_SECRET",
    "AURORA_WEBHOOK_SECRET",
    "AURORA_GCP_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}


def problem(where, text):
    PROBLEMS.append(f"{where}: {text}")


def expect(cond, where, text):
    if not cond:
        problem(where, text)
    return cond


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---- 1. the rendered kustomize base ------------------------------------------------------------


def check_base(path):
    where = "kubectl kustomize deploy/kubernetes"
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind, name=GATEWAY):
        found = [d for d in by_kind.get(kind, []) if d["metadata"]["name"] == name]
        expect(len(found) == 1, where, f"expected one {kind} named {name}, found {len(found)}")
        return found[0] if found else None

    expect("Secret" not in by_kind, where, "the base must not contain a Secret (secret.example.yaml is an example)")

    dep = one("Deployment")
    job = one("Job", f"{GATEWAY}-migrate")
    if dep is None or job is None:
        return
    w = f"{where}: Deployment {GATEWAY}"
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    expect(spec.get("replicas", 1) >= 2, w, "needs at least 2 replicas")
    expect(matches(spec["selector"]["matchLabels"], pod_labels), w, "selector does not match the pod labels")
    expect(pod.get("securityContext", {}).get("runAsNonRoot") is True, w, "pod securityContext.runAsNonRoot must be true")
    containers = pod["containers"]
    expect(len(containers) == 1, w, "expected one container")
    c = containers[0]
    probe_path = lambda p: (c.get(p) or {}).get("httpGet", {}).get("path")  # noqa: E731
    expect(probe_path("readinessProbe") == "/readyz", w, "readiness probe must be GET /readyz")
    expect(probe_path("livenessProbe") == "/healthz", w, "liveness probe must be GET /healthz")
    res = c.get("resources", {})
    expect({"cpu", "memory"} <= set(res.get("requests", {})), w, "needs cpu and memory requests")
    expect("memory" in res.get("limits", {}), w, "needs a memory limit")
    sc = c.get("securityContext", {})
    expect(sc.get("readOnlyRootFilesystem") is True, w, "readOnlyRootFilesystem must be true")
    expect(sc.get("allowPrivilegeEscalation") is False, w, "allowPrivilegeEscalation must be false")
    expect("ALL" in sc.get("capabilities", {}).get("drop", []), w, "must drop ALL capabilities")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    expect(ports.get("http") == 8080, w, "must expose containerPort 8080 named http")

    cm_refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
    secret_refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
    expect(secret_refs == [GATEWAY], w, f"must read the Secret {GATEWAY} with envFrom")
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    if expect(len(cm_refs) == 1 and cm_refs[0] in configmaps, w, "must read the generated ConfigMap with envFrom"):
        data = configmaps[cm_refs[0]].get("data", {})
        leaked = sorted(SECRET_KEYS & set(data))
        expect(not leaked, f"{where}: ConfigMap {cm_refs[0]}", f"secret settings belong in the Secret: {leaked}")
        expect(data.get("AURORA_BIND", "").endswith(":8080"), f"{where}: ConfigMap", "AURORA_BIND must listen on :8080")
    for d in (dep, job):
        for cont in d["spec"]["template"]["spec"]["containers"]:
            for e in cont.get("env", []):
                if e["name"] in SECRET_KEYS and "value" in e:
                    problem(f"{where}: {d['kind']} {d['metadata']['name']}", f"{e['name']} must come from the Secret, not a literal")

    w = f"{where}: Job {GATEWAY}-migrate"
    jc = job["spec"]["template"]["spec"]["containers"][0]
    expect(jc.get("args") == ["migrate"], w, "must run `aurora-gateway migrate`")
    expect(jc["image"] == c["image"], w, f"must use the Deployment's image ({c['image']}), not {jc['image']}")
    db = [e for e in jc.get("env", []) if e["name"] == "AURORA_DATABASE_URL"]
    expect(
        db and db[0].get("valueFrom", {}).get("secretKeyRef", {}).get("name") == GATEWAY,
        w,
        f"must take AURORA_DATABASE_URL from the Secret {GATEWAY}",
    )
    expect(job["spec"]["template"]["spec"].get("securityContext", {}).get("runAsNonRoot") is True, w, "runAsNonRoot must be true")

    # The first apply phase (docs/deploy.md) is `-l app.kubernetes.io/component!=gateway`: it must hold
    # the Job and what the Job needs, and none of the serving objects.
    component = lambda d: d["metadata"].get("labels", {}).get("app.kubernetes.io/component")  # noqa: E731
    phase1 = {(d["kind"], d["metadata"]["name"]) for d in docs if component(d) != "gateway"}
    for need in [("Job", f"{GATEWAY}-migrate"), ("ServiceAccount", GATEWAY), ("NetworkPolicy", GATEWAY)]:
        expect(need in phase1, where, f"{need[0]} {need[1]} must not be labelled component=gateway (first apply phase)")
    for kind in ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]:
        expect((kind, GATEWAY) not in phase1, where, f"{kind} {GATEWAY} must be labelled app.kubernetes.io/component=gateway")

    svc = one("Service")
    if svc:
        expect(matches(svc["spec"]["selector"], pod_labels), f"{where}: Service", "selector does not match the gateway pods")
        expect(
            all(p.get("targetPort") in ("http", 8080) for p in svc["spec"]["ports"]),
            f"{where}: Service",
            "must target the http port",
        )
    pdb = one("PodDisruptionBudget")
    if pdb:
        expect(matches(pdb["spec"]["selector"]["matchLabels"], pod_labels), f"{where}: PodDisruptionBudget", "selector does not match the gateway pods")
        expect(
            pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) >= 1,
            f"{where}: PodDisruptionBudget",
            "must keep a replica up",
        )
    hpa = one("HorizontalPodAutoscaler")
    if hpa:
        w = f"{where}: HorizontalPodAutoscaler"
        expect(hpa["apiVersion"] == "autoscaling/v2", w, "must be autoscaling/v2")
        ref = hpa["spec"]["scaleTargetRef"]
        expect(ref["kind"] == "Deployment" and ref["name"] == GATEWAY, w, "must scale the gateway Deployment")
        expect(hpa["spec"].get("minReplicas", 1) >= 2, w, "minReplicas must be at least 2")
        expect(hpa["spec"]["maxReplicas"] >= hpa["spec"].get("minReplicas", 1), w, "maxReplicas < minReplicas")
    np = one("NetworkPolicy")
    if np:
        w = f"{where}: NetworkPolicy"
        sel = np["spec"]["podSelector"].get("matchLabels", {})
        expect(matches(sel, pod_labels) and matches(sel, job_labels), w, "must select the gateway and the migration pods")
        expect(set(np["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}, w, "must restrict Ingress and Egress")
        in_ports = {p.get("port") for r in np["spec"].get("ingress", []) for p in r.get("ports", [])}
        expect(in_ports == {8080}, w, f"ingress must be to port 8080 only, found {sorted(map(str, in_ports))}")
        expect(all(r.get("from") for r in np["spec"].get("ingress", [])), w, "every ingress rule must name its sources")
        out_ports = {p.get("port") for r in np["spec"].get("egress", []) for p in r.get("ports", [])}
        for port, what in [(53, "DNS"), (5432, "PostgreSQL"), (6379, "Redis"), (8200, "OpenBao"), (443, "HTTPS")]:
            expect(port in out_ports, w, f"no egress rule for {what} (port {port})")
        expect(all(r.get("ports") for r in np["spec"].get("egress", [])), w, "every egress rule must name its ports")
    return len(docs)


# ---- 2. deploy/compose.yaml ---------------------------------------------------------------------


def check_compose(root):
    deploy = os.path.join(root, "deploy")
    path = os.path.join(deploy, "compose.yaml")
    where = "deploy/compose.yaml"
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        problem(where, f"does not parse: {e}")
        return
    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())

    def rel(p, base=deploy):
        return os.path.normpath(os.path.join(base, p))

    for name, svc in services.items():
        w = f"{where}: service {name}"
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = rel(build.get("context", "."))
            expect(os.path.isdir(ctx), w, f"build context {build.get('context')} does not exist")
            df = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
            expect(os.path.isfile(df), w, f"Dockerfile {os.path.relpath(df, root)} does not exist")
        elif isinstance(build, str):
            expect(os.path.isdir(rel(build)), w, f"build context {build} does not exist")
        for v in svc.get("volumes", []) or []:
            src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith((".", "/")):
                expect(os.path.exists(rel(src)), w, f"mounts {src}, which does not exist")
            elif src:
                expect(src in volumes, w, f"named volume {src} is not declared under volumes:")
        for dep in svc.get("depends_on", {}) or {}:
            expect(dep in services, w, f"depends on unknown service {dep}")
        cmd = svc.get("command") or []
        cmd = cmd.split() if isinstance(cmd, str) else cmd
        expect(not any(str(a).startswith("-dev") for a in cmd), w, "runs in dev mode")
        one_shot = svc.get("restart") == "no"
        expect(one_shot or "healthcheck" in svc, w, "a long-running service needs a healthcheck")

    gateways = [n for n, s in services.items() if s.get("image", "").startswith(f"{GATEWAY}:") and s.get("command") != ["migrate"]]
    expect(len(gateways) >= 2, where, f"needs at least two gateway replicas, found {gateways}")
    for name in ["postgres", "redis", "openbao", "openbao-init", "migrate", "lb"]:
        expect(name in services, where, f"no service {name}")
    for name in gateways:
        svc = services[name]
        w = f"{where}: service {name}"
        deps = svc.get("depends_on") or {}
        for one_shot in ["migrate", "openbao-init"]:
            expect(
                (deps.get(one_shot) or {}).get("condition") == "service_completed_successfully",
                w,
                f"must wait for {one_shot} to complete successfully",
            )
        for store in ["postgres", "redis", "openbao"]:
            expect((deps.get(store) or {}).get("condition") == "service_healthy", w, f"must wait for {store} to be healthy")
        env = svc.get("environment") or {}
        expect(":?" in str(env.get("AURORA_INTERNAL_SECRET", "")), w, "AURORA_INTERNAL_SECRET must be required (${AURORA_INTERNAL_SECRET:?…})")
        for key in ["AURORA_DATABASE_URL", "AURORA_REDIS_URL", "AURORA_VAULT_ADDR"]:
            expect(env.get(key), w, f"{key} must be set (every replica shares the stores)")
        expect("ports" not in svc, w, "a replica publishes no port: the balancer does")
    lb = services.get("lb") or {}
    lb_deps = lb.get("depends_on") or {}
    for name in gateways:
        expect((lb_deps.get(name) or {}).get("condition") == "service_healthy", f"{where}: service lb", f"must wait for {name} to be healthy")
    conf_path = os.path.join(deploy, "nginx.conf")
    if os.path.isfile(conf_path):
        upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", open(conf_path).read(), re.M)
        expect(sorted(h for h, _ in upstreams) == sorted(gateways), "deploy/nginx.conf", f"upstream servers {upstreams} are not the gateway services {gateways}")
    return len(services)


# ---- 3. deploy/openbao-policy.hcl ---------------------------------------------------------------

POLICY_PATHS = {
    "secret/data/aurora/*": {"create", "read", "update"},
    "secret/metadata/aurora/*": {"list", "read", "delete"},
}


def parse_policy(text):
    rules = {}
    for m in re.finditer(r'path\s+"([^"]+)"\s*\{(.*?)\}', text, re.S):
        caps = re.search(r"capabilities\s*=\s*\[(.*?)\]", m.group(2), re.S)
        rules[m.group(1)] = set(re.findall(r'"([^"]+)"', caps.group(1))) if caps else set()
    return rules


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(addr, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{addr}/v1/{path}", data=data, method=method, headers={"X-Vault-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check_policy(root, bao, log_path):
    where = "deploy/openbao-policy.hcl"
    text = open(os.path.join(root, "deploy/openbao-policy.hcl")).read()
    rules = parse_policy(text)
    show = lambda r: "; ".join(f"{p} {sorted(c)}" for p, c in sorted(r.items()))  # noqa: E731
    expect(rules == POLICY_PATHS, where, f"grants {show(rules)}; expected exactly {show(POLICY_PATHS)}")

    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    root_token = "deploy-check-root"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [bao, "server", "-dev", f"-dev-root-token-id={root_token}", f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(addr, root_token, "GET", "sys/health")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                problem(where, f"the OpenBao dev server did not start (see {log_path})")
                return 0
            time.sleep(0.2)
        status, body = call(addr, root_token, "PUT", "sys/policies/acl/aurora-gateway", {"policy": text})
        if not expect(status in (200, 204), where, f"OpenBao refused the policy: {status} {body[:300]!r}"):
            return 0
        status, body = call(
            addr, root_token, "POST", "auth/token/create", {"policies": ["aurora-gateway"], "no_default_policy": True, "ttl": "10m"}
        )
        if not expect(status == 200, where, f"could not create a token: {status} {body[:300]!r}"):
            return 0
        token = json.loads(body)["auth"]["client_token"]
        doc = {"data": {"v": "eA=="}}
        # (method, path, body, allowed): the gateway's operations in the order it does them, then
        # what the policy must refuse.
        cases = [
            ("LIST", "secret/metadata/aurora", None, True),  # readiness ping
            ("POST", "secret/data/aurora/system/cache-key", doc, True),  # kv2 set
            ("POST", "secret/data/aurora/users/u1/gcp/c1", {"options": {"cas": 0}, **doc}, True),  # first CAS write
            ("POST", "secret/data/aurora/users/u1/gcp/c1", {"options": {"cas": 1}, **doc}, True),  # later CAS write
            ("GET", "secret/data/aurora/users/u1/gcp/c1", None, True),  # kv2 read
            ("LIST", "secret/metadata/aurora/users/u1/gcp", None, True),  # kv2 list
            ("LIST", "secret/metadata/aurora/users", None, True),  # the reconciler's scan
            ("GET", "secret/metadata/aurora/users/u1/gcp/c1", None, True),  # its written_at
            ("DELETE", "secret/metadata/aurora/users/u1/gcp/c1", None, True),  # kv2 delete_metadata
            ("GET", "secret/metadata/other/x", None, False),
            ("GET", "secret/data/other/x", None, False),
            ("POST", "secret/data/other/x", doc, False),
            ("LIST", "secret/metadata", None, False),
            ("DELETE", "secret/data/aurora/system/cache-key", None, False),
            ("POST", "secret/destroy/aurora/system/cache-key", {"versions": [1]}, False),
            ("GET", "sys/mounts", None, False),
            ("GET", "auth/token/lookup-self", None, False),
        ]
        for method, path, body, allowed in cases:
            status, answer = call(addr, token, method, path, body)
            ok = status in (200, 204, 404) if allowed else status == 403
            expect(
                ok,
                where,
                f"{method} {path}: {status} ({'should be allowed' if allowed else 'should be refused (403)'}) {answer[:200]!r}",
            )
        return len(cases)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: deploy_check.py ROOT RENDERED_BASE BAO_BIN BAO_LOG")
    root, rendered, bao, bao_log = sys.argv[1:]
    n = check_base(rendered)
    print(f"deploy-check: rendered base: {n} resources keep the documented properties")
    n = check_compose(root)
    print(f"deploy-check: deploy/compose.yaml: {n} services checked (replicas, order, healthchecks, files)")
    n = check_policy(root, bao, bao_log)
    print(f"deploy-check: deploy/openbao-policy.hcl: {n} operations checked against a real OpenBao")
    for p in PROBLEMS:
        print(f"deploy-check: PROBLEM: {p}")
    sys.exit(1 if PROBLEMS else 0)


if __name__ == "__main__":
    main()
