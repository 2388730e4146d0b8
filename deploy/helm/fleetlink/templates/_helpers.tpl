{{- define "fleetlink.name" -}}{{ .Release.Name }}-fleetlink{{- end -}}

{{- define "fleetlink.labels" -}}
app.kubernetes.io/name: fleetlink
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fleetlink.secretName" -}}
{{- if .Values.secrets.existingSecret -}}{{ .Values.secrets.existingSecret }}{{- else -}}{{ include "fleetlink.name" . }}{{- end -}}
{{- end -}}

{{- define "fleetlink.natsUrls" -}}
{{- $name := include "fleetlink.name" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.broker.nats.replicas) -}}
{{- $urls = append $urls (printf "nats://ingest:$(FLEETLINK_NATS_PASSWORD)@%s-nats-%d.%s-nats:4222" $name $i $name) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{- /* Environment shared by the API and the ingest pods. */ -}}
{{- define "fleetlink.env" -}}
- name: FLEETLINK_DB_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "fleetlink.secretName" . }}, key: database-password}}
- name: FLEETLINK_MQTT_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "fleetlink.secretName" . }}, key: mqtt-password}}
- name: FLEETLINK_FIELD_KEYS
  valueFrom: {secretKeyRef: {name: {{ include "fleetlink.secretName" . }}, key: field-keys}}
- name: FLEETLINK_DATABASE_URL
{{- if .Values.postgres.enabled }}
  value: "postgresql://{{ .Values.postgres.user }}:$(FLEETLINK_DB_PASSWORD)@{{ include "fleetlink.name" . }}-postgres:5432/{{ .Values.postgres.database }}"
{{- else }}
  value: "postgresql://{{ .Values.postgres.user }}:$(FLEETLINK_DB_PASSWORD)@{{ required "postgres.externalHost is required when postgres.enabled is false" .Values.postgres.externalHost }}/{{ .Values.postgres.database }}"
{{- end }}
{{- if eq .Values.broker.kind "nats" }}
- name: FLEETLINK_NATS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "fleetlink.secretName" . }}, key: mqtt-password}}
- name: FLEETLINK_MQTT_URL
  value: "mqtt://ingest:$(FLEETLINK_MQTT_PASSWORD)@{{ include "fleetlink.name" . }}-nats:1883"
- name: FLEETLINK_INGEST_SOURCE
  value: nats
- name: FLEETLINK_NATS_URL
  value: "{{ include "fleetlink.natsUrls" . }}"
- name: FLEETLINK_NATS_STREAM_REPLICAS
  value: {{ .Values.broker.nats.streamReplicas | quote }}
- name: FLEETLINK_NATS_ACK_WAIT_S
  value: {{ .Values.broker.nats.ackWaitSeconds | quote }}
{{- else }}
{{- $url := urlParse .Values.broker.mqtt.url }}
- name: FLEETLINK_MQTT_URL
  value: "{{ $url.scheme }}://{{ .Values.broker.mqtt.user }}:$(FLEETLINK_MQTT_PASSWORD)@{{ $url.host }}"
- name: FLEETLINK_MQTT_SHARE_GROUP
  value: {{ .Values.broker.mqtt.shareGroup | quote }}
{{- end }}
- name: FLEETLINK_MQTT_ALLOW_PLAINTEXT
  value: {{ .Values.broker.mqtt.allowPlaintext | quote }}
- name: FLEETLINK_MODE
  value: production
- name: FLEETLINK_HTTP_HOST
  value: 0.0.0.0
- name: FLEETLINK_HTTP_PORT
  value: {{ .Values.api.port | quote }}
- name: FLEETLINK_LOG_JSON
  value: {{ .Values.config.logJson | quote }}
- name: FLEETLINK_COOKIE_SECURE
  value: {{ .Values.config.cookieSecure | quote }}
- name: FLEETLINK_DEVICE_MQTT_URL
  value: {{ .Values.config.deviceMqttUrl | quote }}
{{- end -}}

{{- define "fleetlink.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
{{- end -}}

{{- define "fleetlink.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "fleetlink.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
