{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "alphaspt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alphaspt.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's resource name: fullname-component, at most 63 characters. */}}
{{- define "alphaspt.componentName" -}}
{{- printf "%s-%s" (include "alphaspt.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alphaspt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------ */}}

{{- define "alphaspt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alphaspt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "alphaspt.labels" -}}
helm.sh/chart: {{ include "alphaspt.chart" . }}
{{ include "alphaspt.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alphaspt
{{- end }}

{{/* dict "root" $ "component" "api" */}}
{{- define "alphaspt.componentSelectorLabels" -}}
{{ include "alphaspt.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "alphaspt.componentLabels" -}}
{{ include "alphaspt.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Images ------------------------------------------------------------------------------ */}}

{{/* dict "root" $ "image" .Values.image.worker */}}
{{- define "alphaspt.image" -}}
{{- $image := .image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* Connection settings ----------------------------------------------------------------
     One Secret holds them all, its keys named after the environment variables, exactly as
     the operator reads it for the strategy runners it creates: the chart's pods and the
     operator's pods can never disagree about where Kafka, PostgreSQL or Redis are. */}}

{{- define "alphaspt.connectionSecret" -}}
{{- required "connections.existingSecret: name the Secret that holds the connection settings" .Values.connections.existingSecret }}
{{- end }}

{{/* dict "root" $ "name" "ALPHASPT_..." "optional" false */}}
{{- define "alphaspt.envFromConnectionSecret" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "alphaspt.connectionSecret" .root }}
      key: {{ .name }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{- define "alphaspt.envKafka" -}}
{{ include "alphaspt.envFromConnectionSecret" (dict "root" . "name" "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS") }}
{{- range list "ALPHASPT_KAFKA__SECURITY_PROTOCOL" "ALPHASPT_KAFKA__SASL_MECHANISM" "ALPHASPT_KAFKA__SASL_USERNAME" "ALPHASPT_KAFKA__SASL_PASSWORD" }}
{{ include "alphaspt.envFromConnectionSecret" (dict "root" $ "name" . "optional" true) }}
{{- end }}
{{- end }}

{{- define "alphaspt.envPostgres" -}}
{{ include "alphaspt.envFromConnectionSecret" (dict "root" . "name" "ALPHASPT_POSTGRES__URL") }}
{{- end }}

{{- define "alphaspt.envRedis" -}}
{{ include "alphaspt.envFromConnectionSecret" (dict "root" . "name" "ALPHASPT_REDIS__URL") }}
{{- end }}

{{/* Kite Connect credentials: a Secret whose keys are variable names, for the stages that
     talk to the broker. */}}
{{- define "alphaspt.envFromKite" -}}
{{- with .Values.connections.kite.existingSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}

{{/* Environment -------------------------------------------------------------------------- */}}

{{- define "alphaspt.envCommon" -}}
- name: ALPHASPT_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: ALPHASPT_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{- define "alphaspt.envMetrics" -}}
- name: ALPHASPT_METRICS__HOST
  value: "0.0.0.0"
- name: ALPHASPT_METRICS__PORT
  value: {{ .Values.metrics.port | quote }}
{{- end }}

{{/* Pod pieces --------------------------------------------------------------------------- */}}

{{/* The restricted Pod Security Standard, at pod level. */}}
{{- define "alphaspt.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The restricted Pod Security Standard, at container level. */}}
{{- define "alphaspt.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "alphaspt.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* nodeSelector, tolerations, affinity: the component's own, else the chart-wide ones.
     dict "root" $ "c" $componentValues */}}
{{- define "alphaspt.scheduling" -}}
{{- with (default .root.Values.nodeSelector .c.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.tolerations .c.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.affinity .c.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod annotations: chart-wide plus the component's. dict "root" $ "c" $componentValues */}}
{{- define "alphaspt.podAnnotations" -}}
{{- $annotations := merge (dict) (default (dict) .c.podAnnotations) .root.Values.podAnnotations }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "alphaspt.volumes" -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- if .Values.development.liveUpdate }}
  - name: dev-source
    emptyDir:
      sizeLimit: 128Mi
  - name: dev-tools
    configMap:
      name: {{ include "alphaspt.componentName" (dict "root" . "component" "dev-tools") }}
{{- end }}
{{- end }}

{{- define "alphaspt.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- if .Values.development.liveUpdate }}
  - name: dev-source
    mountPath: /opt/alphaspt/dev
  - name: dev-tools
    mountPath: /opt/alphaspt/dev-tools
    readOnly: true
{{- end }}
{{- end }}

{{- define "alphaspt.envDevelopment" -}}
{{- if .Values.development.liveUpdate }}
- name: PYTHONPATH
  value: /opt/alphaspt/dev
{{- end }}
{{- end }}

{{/* Development only: run the process under the dev supervisor, which restarts it when
     Tilt's live update writes /opt/alphaspt/dev/.restart. The image's entrypoint is
     `alphaspt`, so the arguments stay the same. */}}
{{- define "alphaspt.devCommand" -}}
{{- if .Values.development.liveUpdate }}
command:
  - python
  - /opt/alphaspt/dev-tools/dev-supervisor.py
  - /opt/alphaspt/dev/.restart
  - --
  - alphaspt
{{- end }}
{{- end }}

{{/* Development only: copy the installed package to the writable dev-source volume so that
     Tilt's live update can replace single files. dict "root" $ "image" $imageValues */}}
{{- define "alphaspt.devInitContainers" -}}
{{- if .root.Values.development.liveUpdate }}
initContainers:
  - name: dev-source
    image: {{ include "alphaspt.image" . | quote }}
    imagePullPolicy: {{ .image.pullPolicy }}
    command:
      - python
      - -c
      - >-
        import importlib.util, pathlib, shutil;
        spec = importlib.util.find_spec('alphaspt');
        shutil.copytree(next(iter(spec.submodule_search_locations)),
        pathlib.Path('/opt/alphaspt/dev/alphaspt'), dirs_exist_ok=True)
    securityContext:
      {{- include "alphaspt.containerSecurityContext" .root | nindent 6 }}
    resources:
      requests:
        cpu: 10m
        memory: 32Mi
      limits:
        cpu: 200m
        memory: 64Mi
    volumeMounts:
      - name: dev-source
        mountPath: /opt/alphaspt/dev
{{- end }}
{{- end }}

{{/* NetworkPolicy egress: DNS plus the configured TCP ports and extra rules. */}}
{{- define "alphaspt.egressRules" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- with .Values.networkPolicy.egress.tcpPorts }}
- ports:
    {{- range . }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- with .Values.networkPolicy.egress.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}
