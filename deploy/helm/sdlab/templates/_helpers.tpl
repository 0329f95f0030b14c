{{/* The name of one component's objects: <release>-<component>, cut to a DNS label. */}}
{{- define "sdlab.name" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What selects one component's pods; every label here is also on the pods. */}}
{{- define "sdlab.selector" -}}
app.kubernetes.io/name: sdlab
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sdlab.labels" -}}
{{ include "sdlab.selector" . }}
app.kubernetes.io/part-of: system-design-lab
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* A value by the lab's budget names (services/lab/budgets/rules.py): the component's own name, else the
longest key that is a prefix of it followed by "-", else the default. Args: (list map name default). */}}
{{- define "sdlab.lookup" -}}
{{- $map := index . 0 -}}
{{- $name := index . 1 -}}
{{- if hasKey $map $name -}}
{{- index $map $name -}}
{{- else -}}
{{- $best := "" -}}
{{- range $key, $_ := $map -}}
{{- if and (hasPrefix (printf "%s-" $key) $name) (gt (len $key) (len $best)) -}}
{{- $best = $key -}}
{{- end -}}
{{- end -}}
{{- if $best -}}{{- index $map $best -}}{{- else -}}{{- index . 2 -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/* requests and limits alike from the budgets, like the lab's CFS quota per process. */}}
{{- define "sdlab.resources" -}}
{{- $cores := include "sdlab.lookup" (list .root.Values.budgets .component .root.Values.defaultCores) | float64 -}}
{{- $mib := include "sdlab.lookup" (list .root.Values.memoryMiB .component .root.Values.defaultMemoryMiB) | float64 -}}
{{- $cpu := printf "%dm" (int (round (mulf $cores 1000) 0)) -}}
{{- $memory := printf "%dMi" (int (round $mib 0)) -}}
requests:
  cpu: {{ $cpu }}
  memory: {{ $memory }}
limits:
  cpu: {{ $cpu }}
  memory: {{ $memory }}
{{- end -}}

{{- define "sdlab.image" -}}
{{- $i := .Values.image -}}
{{- if $i.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $i.registry) $i.repository ($i.tag | toString) -}}
{{- else -}}
{{- printf "%s:%s" $i.repository ($i.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* Preferred anti-affinity: one component's pods on different nodes where the cluster has them. */}}
{{- define "sdlab.affinity" -}}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "sdlab.selector" . | nindent 14 }}
{{- end -}}

{{/* The servers every design reads, as the lab's URL settings: in-chart StatefulSets or the user's. */}}
{{- define "sdlab.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-redis-0.%s-redis:6379/0" .Release.Name .Release.Name -}}
{{- else -}}
{{- required "redis.externalUrl is needed when redis.enabled is false" .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "sdlab.databaseUrls" -}}
{{- if .Values.postgres.enabled -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.postgres.shards) -}}
{{- $urls = append $urls (printf "postgresql://postgres@%s-postgres-%d.%s-postgres:5432/postgres" $.Release.Name $i $.Release.Name) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- if not .Values.postgres.externalUrls -}}{{- fail "postgres.externalUrls is needed when postgres.enabled is false" -}}{{- end -}}
{{- join "," .Values.postgres.externalUrls -}}
{{- end -}}
{{- end -}}

{{- define "sdlab.kafkaServers" -}}
{{- if .Values.kafka.enabled -}}
{{- $servers := list -}}
{{- range $i := until (int .Values.kafka.brokers) -}}
{{- $servers = append $servers (printf "%s-kafka-%d.%s-kafka:9092" $.Release.Name $i $.Release.Name) -}}
{{- end -}}
{{- join "," $servers -}}
{{- else -}}
{{- if not .Values.kafka.externalBootstrapServers -}}{{- fail "kafka.externalBootstrapServers is needed when kafka.enabled is false" -}}{{- end -}}
{{- join "," .Values.kafka.externalBootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* A design's settings, the same names as docker-compose.yml sets (<PREFIX>...): args (dict root design). */}}
{{- define "sdlab.env" -}}
{{- $root := .root -}}
{{- $prefix := printf "%s_" (upper .design) -}}
{{- $spec := index $root.Values.designs .design -}}
- name: {{ $prefix }}INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: {{ $prefix }}REDIS_URL
  value: {{ include "sdlab.redisUrl" $root | quote }}
- name: {{ $prefix }}DATABASE_URLS
  value: {{ include "sdlab.databaseUrls" $root | quote }}
- name: {{ $prefix }}KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "sdlab.kafkaServers" $root | quote }}
- name: {{ $prefix }}PUBLIC_URL
  value: {{ printf "%s://%s" $root.Values.ingress.scheme $spec.host | quote }}
- name: {{ $prefix }}LOG_FORMAT
  value: {{ $root.Values.logFormat | quote }}
{{- /* Pods listen on 0.0.0.0: the settings refuse the public default secrets, so they come from the Secret. */}}
- name: {{ $prefix }}BIND_HOST
  value: "0.0.0.0"
- name: {{ $prefix }}EXPOSED
  value: {{ $root.Values.security.exposed | toString | quote }}
{{- range $secret := include "sdlab.designSecrets" .design | fromJsonArray }}
- name: {{ $prefix }}{{ $secret }}
  valueFrom:
    secretKeyRef:
      name: {{ include "sdlab.secretName" $root }}
      key: {{ include "sdlab.secretKey" (list $prefix $secret) }}
{{- end }}
{{- range $component, $c := $spec.components }}
{{- if eq $c.tier "service" }}
- name: {{ $prefix }}{{ trimPrefix (printf "%s-" $.design) $component | upper | replace "-" "_" }}_URL
  value: {{ printf "http://%s:8000" (include "sdlab.name" (dict "root" $root "component" $component)) | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := $spec.settings }}
- name: {{ $prefix }}{{ $name | upper }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}


{{/* The settings each design refuses at their public defaults, as Design.secrets in loadtests/<design>/plugin.py. */}}
{{- define "sdlab.designSecrets" -}}
{{- $all := dict "shortener" (list "ID_SECRET") "messaging" (list "TOKEN_SECRET" "LAB_PASSWORD") "shop" (list "TOKEN_SECRET" "LAB_PASSWORD") -}}
{{- index $all . | toJson -}}
{{- end -}}

{{/* One lab password for every design (key LAB_PASSWORD); each other secret under its variable's name. */}}
{{- define "sdlab.secretKey" -}}
{{- if eq (index . 1) "LAB_PASSWORD" -}}LAB_PASSWORD{{- else -}}{{- printf "%s%s" (index . 0) (index . 1) -}}{{- end -}}
{{- end -}}

{{- define "sdlab.secretName" -}}
{{- .Values.security.existingSecret | default (printf "%s-secrets" .Release.Name) -}}
{{- end -}}
