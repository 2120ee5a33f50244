"""The Kubernetes manifests of deploy/kubernetes/ (docs/kubernetes.md).

Every YAML document parses, and each is checked against a JSON Schema of the
fields it uses (tests/deploy/schemas.py), written for this project: unknown
or misspelt fields at the levels the manifests use are errors, and so are
values of the wrong type. Then what must hold together does: the Deployment
runs as the image's non-root user with a read-only root filesystem and an
emptyDir at EXPORT_TMPDIR, stops within a grace above EXPORT_SHUTDOWN_GRACE,
probes /healthz on the port of EXPORT_METRICS_ADDR, reads lookup tokens from
a Secret file, has a memory limit that fits the memory model; the Service,
the ServiceMonitor and the PodDisruptionBudget select its pods; each KEDA
ScaledObject scales it on P:queue of the configured prefix.

Run: /usr/bin/python3 tests/deploy/test_manifests.py
"""

import glob
import os
import re
import sys
import unittest

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import schemas  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
MIB = 1024 * 1024


def load_all():
    """{relative path: [documents]} of every manifest."""
    out = {}
    for path in sorted(glob.glob(os.path.join(KDIR, "**", "*.yaml"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            out[os.path.relpath(path, KDIR)] = [d for d in yaml.safe_load_all(f) if d is not None]
    return out


def quantity(text):
    """A Kubernetes quantity (128Mi, 2Gi, 500M, 250m) as a number."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?", str(text))
    if not m:
        raise ValueError("bad quantity %r" % text)
    unit = {None: 1, "Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "Ti": 1024 ** 4,
            "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}[m.group(2)]
    return float(m.group(1)) * unit


def config_defaults():
    """{EXPORT_*: default} from common/config.c's settings table."""
    with open(os.path.join(ROOT, "common", "config.c"), encoding="utf-8") as f:
        text = f.read()
    out = {}
    for m in re.finditer(r'_SETTING\(\s*"(EXPORT_[A-Z_]+)"\s*,\s*"[^"]*"\s*,\s*"[^"]*"\s*,'
                         r'\s*\w+\s*,\s*("[^"]*"|-?\d+|NULL)', text):
        out[m.group(1)] = None if m.group(2) == "NULL" else m.group(2).strip('"')
    return out


class Manifests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.files = load_all()
        cls.docs = [(p, d) for p, ds in cls.files.items() for d in ds]
        cls.by_kind = {}
        for p, d in cls.docs:
            cls.by_kind.setdefault(d.get("kind"), []).append((p, d))
        cls.deployment = cls.by_kind["Deployment"][0][1]
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        cls.container = cls.pod["containers"][0]
        cm = {d["metadata"]["name"]: d for _, d in cls.by_kind["ConfigMap"]}
        cls.env = {}
        for src in cls.container.get("envFrom", []):
            cls.env.update(cm[src["configMapRef"]["name"]]["data"])
        for e in cls.container.get("env", []):
            cls.env[e["name"]] = e.get("value", e.get("valueFrom"))
        cls.defaults = config_defaults()

    def setting(self, name):
        value = self.env.get(name)
        if value is None:
            value = self.defaults.get(name)
        self.assertIsNotNone(value, "%s neither set nor found in common/config.c" % name)
        return value

    def test_files_parse_and_match_their_schemas(self):
        self.assertTrue(self.files, "no manifests in deploy/kubernetes")
        wanted = {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "ScaledObject",
                  "TriggerAuthentication", "ServiceMonitor", "Secret", "Kustomization"}
        self.assertLessEqual(wanted, set(self.by_kind), sorted(self.by_kind))
        for path, doc in self.docs:
            with self.subTest(path=path, kind=doc.get("kind")):
                schema = schemas.BY_KIND.get(doc.get("kind"))
                self.assertIsNotNone(schema, "no schema for kind %r" % doc.get("kind"))
                errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc),
                                key=lambda e: list(e.absolute_path))
                self.assertFalse(errors, "\n".join(
                    "%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in errors))

    def test_schemas_catch_mistakes(self):
        """The schemas are strict where the manifests are: a typo fails."""
        import copy
        bad = copy.deepcopy(self.deployment)
        bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        self.assertTrue(list(jsonschema.Draft7Validator(schemas.BY_KIND["Deployment"])
                             .iter_errors(bad)))
        bad = copy.deepcopy(self.deployment)
        bad["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "75"
        self.assertTrue(list(jsonschema.Draft7Validator(schemas.BY_KIND["Deployment"])
                             .iter_errors(bad)))

    def test_environment_names_are_the_workers(self):
        known = set(self.defaults)
        self.assertIn("EXPORT_POOL_SIZE", known, "common/config.c's table was not read")
        for name in self.env:
            if re.fullmatch(r"EXPORT_SERVICE_[A-Z0-9]+_(URL|AUTH|AUTH_FILE|TIMEOUT_MS|RETRIES|"
                            r"MAX_INFLIGHT|RATE|CACHE_TTL|BATCH_URL|BATCH_MAX)", name):
                continue
            if name.startswith("EXPORT_REDIS_SENTINEL") or name == "EXPORT_REDIS_MASTER":
                continue
            self.assertIn(name, known, "%s is no setting of the worker" % name)
            self.assertFalse(name.endswith("_AUTH"), "a token in plain env: use _AUTH_FILE")
        url = self.env["EXPORT_REDIS_URL"]
        self.assertIsInstance(url, dict, "EXPORT_REDIS_URL must come from a Secret")
        self.assertIn("secretKeyRef", url)

    def test_non_root_read_only_with_tmpdir_volume(self):
        sc, csc = self.pod["securityContext"], self.container["securityContext"]
        self.assertIs(sc["runAsNonRoot"], True)
        with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
            users = re.findall(r"^USER\s+(\S+)", f.read(), re.M)
        self.assertEqual(str(sc["runAsUser"]), users[-1].split(":")[0],
                         "runAsUser is not the image's USER")
        self.assertNotEqual(sc["runAsUser"], 0)
        self.assertIs(csc["readOnlyRootFilesystem"], True)
        self.assertIs(csc["allowPrivilegeEscalation"], False)
        self.assertIn("ALL", csc["capabilities"]["drop"])
        tmpdir = self.setting("EXPORT_TMPDIR")
        mounts = {m["mountPath"]: m["name"] for m in self.container["volumeMounts"]}
        self.assertIn(tmpdir, mounts, "nothing mounted at EXPORT_TMPDIR %s" % tmpdir)
        vols = {v["name"]: v for v in self.pod["volumes"]}
        vol = vols[mounts[tmpdir]]
        self.assertIn("emptyDir", vol)
        self.assertNotEqual(vol["emptyDir"].get("medium"), "Memory",
                            "workbooks in RAM: docs/operations.md#temporary-folder")

    def test_grace_and_probes(self):
        grace = int(self.setting("EXPORT_SHUTDOWN_GRACE"))
        tgp = self.pod["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(tgp, grace + 2, "terminationGracePeriodSeconds %d, grace %d"
                                % (tgp, grace))
        addr = self.setting("EXPORT_METRICS_ADDR")
        host, _, port = addr.rpartition(":")
        self.assertIn(host, ("0.0.0.0", "[::]", ""), "the probes reach the pod's address")
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            with self.subTest(probe=probe):
                get = self.container[probe]["httpGet"]
                self.assertEqual(get["path"], "/healthz")
                p = get["port"]
                self.assertEqual(str(ports.get(p, p)), port, "%s probes port %s, the worker "
                                 "listens on %s" % (probe, p, port))
        live = self.container["livenessProbe"]
        self.assertGreaterEqual(live["periodSeconds"] * live["failureThreshold"], 30,
                                "liveness restarts workers within a short Redis outage")

    def test_lookup_tokens_from_a_secret_file(self):
        files = {k: v for k, v in self.env.items() if re.fullmatch(r"EXPORT_SERVICE_\w+_AUTH_FILE", k)}
        self.assertTrue(files, "no EXPORT_SERVICE_<NAME>_AUTH_FILE")
        vols = {v["name"]: v for v in self.pod["volumes"]}
        for name, path in files.items():
            service = name[len("EXPORT_SERVICE_"):-len("_AUTH_FILE")]
            self.assertIn("EXPORT_SERVICE_%s_URL" % service, self.env)
            mount = [m for m in self.container["volumeMounts"]
                     if path.startswith(m["mountPath"].rstrip("/") + "/")]
            self.assertEqual(len(mount), 1, "%s=%s is under no mount" % (name, path))
            self.assertTrue(mount[0].get("readOnly"))
            self.assertIn("secret", vols[mount[0]["name"]], "%s is not from a Secret" % name)

    def test_resources_fit_the_memory_model(self):
        res = self.container["resources"]
        limit = quantity(res["limits"]["memory"])
        request = quantity(res["requests"]["memory"])
        self.assertLessEqual(request, limit)
        # docs/operations.md#sizing: about 20 MiB at rest; the pool's response
        # buffers; per running job twice its inline document, 30 bytes per
        # distinct key (a million) and about 20 MiB of window and buffers.
        pool = int(self.setting("EXPORT_POOL_SIZE"))
        resp = int(self.setting("EXPORT_MAX_RESPONSE_BYTES"))
        conc = int(self.setting("EXPORT_CONCURRENCY"))
        doc = int(self.setting("EXPORT_MAX_JOB_BYTES"))
        need = 20 * MIB + pool * resp + conc * (2 * doc + 30 * 10 ** 6 + 20 * MIB)
        self.assertGreaterEqual(limit, need, "memory limit %.0f MiB below the model's %.0f MiB"
                                % (limit / MIB, need / MIB))
        self.assertLessEqual(limit, 2 * need, "memory limit far above the model")

    def pod_labels(self):
        return self.deployment["spec"]["template"]["metadata"]["labels"]

    def test_selectors_match_the_pods(self):
        labels = self.pod_labels()
        sel = self.deployment["spec"]["selector"]["matchLabels"]
        self.assertLessEqual(sel.items(), labels.items())
        for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor"):
            for path, d in self.by_kind[kind]:
                with self.subTest(path=path):
                    s = d["spec"]["selector"]
                    s = s.get("matchLabels", s) if kind != "Service" else s
                    self.assertLessEqual(s.items(), labels.items(), "%s selects no worker" % path)
        svc = self.by_kind["Service"][0][1]
        port = svc["spec"]["ports"][0]
        self.assertEqual(port["name"], "metrics")
        names = {p["name"] for p in self.container["ports"]}
        self.assertIn(port["targetPort"], names)
        # A ServiceMonitor selects the Service by its labels and port name.
        sm = self.by_kind["ServiceMonitor"][0][1]
        self.assertLessEqual(sm["spec"]["selector"]["matchLabels"].items(),
                             svc["metadata"]["labels"].items())
        self.assertEqual(sm["spec"]["endpoints"][0]["port"], port["name"])
        self.assertEqual(sm["spec"]["endpoints"][0]["path"], "/metrics")
        pdb = self.by_kind["PodDisruptionBudget"][0][1]["spec"]
        self.assertTrue("maxUnavailable" in pdb or "minAvailable" in pdb)

    def test_scaled_objects(self):
        prefix = self.setting("EXPORT_PREFIX")
        auths = {d["metadata"]["name"] for _, d in self.by_kind["TriggerAuthentication"]}
        types = {}
        for path, d in self.by_kind["ScaledObject"]:
            with self.subTest(path=path):
                spec = d["spec"]
                self.assertEqual(spec["scaleTargetRef"]["name"],
                                 self.deployment["metadata"]["name"])
                self.assertGreaterEqual(spec["minReplicaCount"], 0)
                self.assertGreater(spec["maxReplicaCount"], spec["minReplicaCount"])
                trig = spec["triggers"][0]
                types[trig["type"]] = path
                meta = trig["metadata"]
                if trig["type"] == "redis-cluster":
                    # A cluster needs a hash tag in the prefix.
                    self.assertRegex(meta["listName"], r"^[^{]*\{[^}]+\}.*:queue$")
                else:
                    self.assertEqual(meta["listName"], prefix + ":queue")
                self.assertGreater(int(meta["listLength"]), 0)
                if trig["type"] == "redis":
                    self.assertTrue("address" in meta or ("host" in meta and "port" in meta))
                else:
                    self.assertIn("addresses", meta)
                if trig["type"] == "redis-sentinel":
                    self.assertTrue(meta.get("sentinelMaster") or meta.get("sentinelMasterFromEnv"))
                self.assertIn(trig["authenticationRef"]["name"], auths)
        self.assertEqual(set(types), {"redis", "redis-sentinel", "redis-cluster"}, types)
        for _, d in self.by_kind["TriggerAuthentication"]:
            params = {t["parameter"] for t in d["spec"]["secretTargetRef"]}
            self.assertIn("password", params)

    def test_kustomization_lists_existing_files(self):
        kust = self.by_kind["Kustomization"][0][1]
        for res in kust["resources"]:
            self.assertTrue(os.path.isfile(os.path.join(KDIR, res)), res)
        kinds = {d["kind"] for r in kust["resources"] for d in self.files[r]}
        self.assertLessEqual({"Deployment", "Service", "PodDisruptionBudget", "ScaledObject"},
                             kinds)
        self.assertNotIn("Secret", kinds, "example secrets are not applied")
        scaled = [r for r in kust["resources"] if self.files[r][0]["kind"] == "ScaledObject"]
        self.assertEqual(len(scaled), 1, "exactly one ScaledObject variant: %s" % scaled)




if __name__ == "__main__":
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    result = runner.run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    bad = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - bad, bad))
    sys.exit(0 if result.wasSuccessful() else 1)
