"""JSON Schemas (draft 7) of the Kubernetes, KEDA, prometheus-operator and
kustomize fields that deploy/kubernetes/ uses, written for this project from
the APIs' reference documentation. They are closed (additionalProperties:
false) wherever the manifests go, so that a misspelt or misplaced field is an
error; a field the manifests do not use yet must be added here with its type.
"""

STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
QUANTITY = {"type": "string", "pattern": r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T|m)?$"}
DNS_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
LABELS = {"type": "object", "additionalProperties": STR}


def obj(required=(), **props):
    return {"type": "object", "properties": props, "required": list(required),
            "additionalProperties": False}


def arr(items, min_items=0):
    return {"type": "array", "items": items, "minItems": min_items}


def enum(*values):
    return {"enum": list(values)}


METADATA = obj(["name"], name=DNS_NAME, namespace=DNS_NAME, labels=LABELS, annotations=LABELS)


def resource(api_version, kind, spec=None, spec_required=True, **extra):
    props = {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": METADATA}
    required = ["apiVersion", "kind", "metadata"]
    if spec is not None:
        props["spec"] = spec
        if spec_required:
            required.append("spec")
    props.update(extra)
    return obj(required, **props)


LABEL_SELECTOR = obj(["matchLabels"], matchLabels=LABELS)
PORT_REF = {"oneOf": [INT, {"type": "string", "pattern": r"^[a-z0-9-]{1,15}$"}]}

HTTP_PROBE = obj(
    ["httpGet"],
    httpGet=obj(["path", "port"], path=STR, port=PORT_REF, scheme=enum("HTTP", "HTTPS")),
    initialDelaySeconds=INT, periodSeconds=INT, timeoutSeconds=INT,
    failureThreshold=INT, successThreshold=INT)

ENV_VAR = obj(
    ["name"],
    name={"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    value=STR,
    valueFrom=obj(secretKeyRef=obj(["name", "key"], name=DNS_NAME, key=STR, optional=BOOL),
                  configMapKeyRef=obj(["name", "key"], name=DNS_NAME, key=STR, optional=BOOL)))

RESOURCE_LIST = obj(cpu=QUANTITY, memory=QUANTITY, **{"ephemeral-storage": QUANTITY})

CONTAINER = obj(
    ["name", "image"],
    name=DNS_NAME,
    image=STR,
    imagePullPolicy=enum("Always", "IfNotPresent", "Never"),
    command=arr(STR), args=arr(STR),
    env=arr(ENV_VAR),
    envFrom=arr(obj(configMapRef=obj(["name"], name=DNS_NAME),
                    secretRef=obj(["name"], name=DNS_NAME))),
    ports=arr(obj(["containerPort"], name={"type": "string", "pattern": r"^[a-z0-9-]{1,15}$"},
                  containerPort={"type": "integer", "minimum": 1, "maximum": 65535},
                  protocol=enum("TCP", "UDP", "SCTP"))),
    startupProbe=HTTP_PROBE, readinessProbe=HTTP_PROBE, livenessProbe=HTTP_PROBE,
    resources=obj(requests=RESOURCE_LIST, limits=RESOURCE_LIST),
    securityContext=obj(allowPrivilegeEscalation=BOOL, readOnlyRootFilesystem=BOOL,
                        runAsNonRoot=BOOL, runAsUser=INT, runAsGroup=INT,
                        capabilities=obj(drop=arr(STR), add=arr(STR))),
    volumeMounts=arr(obj(["name", "mountPath"], name=DNS_NAME, mountPath=STR, readOnly=BOOL,
                         subPath=STR)))

VOLUME = obj(
    ["name"],
    name=DNS_NAME,
    emptyDir=obj(sizeLimit=QUANTITY, medium=enum("", "Memory")),
    secret=obj(["secretName"], secretName=DNS_NAME, defaultMode=INT, optional=BOOL,
               items=arr(obj(["key", "path"], key=STR, path=STR, mode=INT))))

POD_SPEC = obj(
    ["containers"],
    containers=arr(CONTAINER, 1),
    volumes=arr(VOLUME),
    terminationGracePeriodSeconds={"type": "integer", "minimum": 0},
    automountServiceAccountToken=BOOL,
    enableServiceLinks=BOOL,
    serviceAccountName=DNS_NAME,
    securityContext=obj(runAsNonRoot=BOOL, runAsUser=INT, runAsGroup=INT, fsGroup=INT,
                        seccompProfile=obj(["type"], type=enum("RuntimeDefault", "Localhost",
                                                               "Unconfined"))),
    topologySpreadConstraints=arr(obj(
        ["maxSkew", "topologyKey", "whenUnsatisfiable"], maxSkew=INT, topologyKey=STR,
        whenUnsatisfiable=enum("DoNotSchedule", "ScheduleAnyway"),
        labelSelector=LABEL_SELECTOR)))

DEPLOYMENT = resource("apps/v1", "Deployment", obj(
    ["selector", "template"],
    replicas=INT,
    revisionHistoryLimit=INT,
    selector=LABEL_SELECTOR,
    strategy=obj(["type"], type=enum("RollingUpdate", "Recreate"),
                 rollingUpdate=obj(maxSurge={"type": ["integer", "string"]},
                                   maxUnavailable={"type": ["integer", "string"]})),
    template=obj(["metadata", "spec"], metadata=obj(["labels"], labels=LABELS,
                                                    annotations=LABELS),
                 spec=POD_SPEC)))

SERVICE = resource("v1", "Service", obj(
    ["selector", "ports"],
    clusterIP=STR,
    type=enum("ClusterIP", "NodePort", "LoadBalancer"),
    selector=LABELS,
    ports=arr(obj(["name", "port"], name=STR, port=INT, targetPort=PORT_REF,
                  protocol=enum("TCP", "UDP", "SCTP")), 1)))

PDB = resource("policy/v1", "PodDisruptionBudget", {
    "allOf": [obj(["selector"], selector=LABEL_SELECTOR,
                  maxUnavailable={"type": ["integer", "string"]},
                  minAvailable={"type": ["integer", "string"]})],
    "oneOf": [{"required": ["maxUnavailable"]}, {"required": ["minAvailable"]}]})

CONFIGMAP = resource("v1", "ConfigMap", data=LABELS)

SECRET = resource("v1", "Secret", type=STR, stringData=LABELS, data=LABELS)

SERVICE_MONITOR = resource("monitoring.coreos.com/v1", "ServiceMonitor", obj(
    ["selector", "endpoints"],
    selector=LABEL_SELECTOR,
    namespaceSelector=obj(matchNames=arr(STR), any=BOOL),
    endpoints=arr(obj(["port"], port=STR, path=STR, interval=STR, scrapeTimeout=STR), 1)))

# KEDA's redis, redis-sentinel and redis-cluster list scalers: every
# metadata value is a string.
_REDIS_COMMON = dict(listName=STR, listLength={"type": "string", "pattern": r"^\d+$"},
                     activationListLength={"type": "string", "pattern": r"^\d+$"},
                     enableTLS=enum("true", "false"), unsafeSsl=enum("true", "false"),
                     usernameFromEnv=STR, passwordFromEnv=STR)
TRIGGER = {"oneOf": [
    obj(["type", "metadata"], type={"const": "redis"},
        metadata=obj(["listName", "listLength"], address=STR, addressFromEnv=STR, host=STR,
                     port=STR, databaseIndex={"type": "string", "pattern": r"^\d+$"},
                     **_REDIS_COMMON),
        authenticationRef=obj(["name"], name=DNS_NAME)),
    obj(["type", "metadata"], type={"const": "redis-sentinel"},
        metadata=obj(["listName", "listLength"], addresses=STR, addressesFromEnv=STR,
                     hosts=STR, ports=STR, sentinelMaster=STR, sentinelMasterFromEnv=STR,
                     sentinelUsernameFromEnv=STR, sentinelPasswordFromEnv=STR,
                     databaseIndex={"type": "string", "pattern": r"^\d+$"},
                     **_REDIS_COMMON),
        authenticationRef=obj(["name"], name=DNS_NAME)),
    obj(["type", "metadata"], type={"const": "redis-cluster"},
        metadata=obj(["listName", "listLength"], addresses=STR, addressesFromEnv=STR,
                     hosts=STR, ports=STR, **_REDIS_COMMON),
        authenticationRef=obj(["name"], name=DNS_NAME)),
]}

SCALED_OBJECT = resource("keda.sh/v1alpha1", "ScaledObject", obj(
    ["scaleTargetRef", "triggers"],
    scaleTargetRef=obj(["name"], name=DNS_NAME, kind=STR, apiVersion=STR),
    minReplicaCount=INT, maxReplicaCount=INT, pollingInterval=INT, cooldownPeriod=INT,
    idleReplicaCount=INT,
    advanced=obj(horizontalPodAutoscalerConfig=obj(behavior=obj(
        scaleDown=obj(stabilizationWindowSeconds=INT,
                      policies=arr(obj(["type", "value", "periodSeconds"],
                                       type=enum("Pods", "Percent"), value=INT,
                                       periodSeconds=INT))),
        scaleUp=obj(stabilizationWindowSeconds=INT,
                    policies=arr(obj(["type", "value", "periodSeconds"],
                                     type=enum("Pods", "Percent"), value=INT,
                                     periodSeconds=INT)))))),
    triggers=arr(TRIGGER, 1)))

TRIGGER_AUTH = resource("keda.sh/v1alpha1", "TriggerAuthentication", obj(
    ["secretTargetRef"],
    secretTargetRef=arr(obj(["parameter", "name", "key"],
                            parameter=enum("username", "password", "sentinelUsername",
                                           "sentinelPassword", "tls", "ca", "cert", "key"),
                            name=DNS_NAME, key=STR), 1)))

KUSTOMIZATION = obj(
    ["apiVersion", "kind", "resources"],
    apiVersion={"const": "kustomize.config.k8s.io/v1beta1"},
    kind={"const": "Kustomization"},
    namespace=DNS_NAME,
    labels=arr(obj(["pairs"], pairs=LABELS, includeSelectors=BOOL)),
    resources=arr(STR, 1),
    images=arr(obj(["name"], name=STR, newName=STR, newTag=STR, digest=STR)))

BY_KIND = {
    "Deployment": DEPLOYMENT,
    "Service": SERVICE,
    "PodDisruptionBudget": PDB,
    "ConfigMap": CONFIGMAP,
    "Secret": SECRET,
    "ServiceMonitor": SERVICE_MONITOR,
    "ScaledObject": SCALED_OBJECT,
    "TriggerAuthentication": TRIGGER_AUTH,
    "Kustomization": KUSTOMIZATION,
}
