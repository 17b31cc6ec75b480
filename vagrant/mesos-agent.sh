#!/usr/bin/env bash
# A lab Mesos agent with the Docker engine and both containerizers
# (--containerizers=docker,mesos): container.type DOCKER runs through the
# Docker engine, container.type MESOS with a docker image through the Mesos
# containerizer's own image store. Tasks use host networking; their ports
# come from the agent's default ports resource [31000-32000].
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. /vagrant/common.sh
need_env MESOS_IP ZK_HOSTS AGENT_RACK

apt_install docker.io
systemctl enable --now docker
docker version --format 'Docker engine {{.Server.Version}} (API {{.Server.APIVersion}})'

install -d /var/lib/mesos/agent /var/log/mesos
write_unit mesos-agent.service <<UNIT
[Unit]
Description=Apache Mesos agent (Flotilla lab)
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
ExecStart=/usr/local/sbin/mesos-agent \\
  --master=zk://$ZK_HOSTS/mesos \\
  --ip=$MESOS_IP --hostname=$MESOS_IP --port=5051 \\
  --work_dir=/var/lib/mesos/agent \\
  --log_dir=/var/log/mesos \\
  --containerizers=docker,mesos \\
  --image_providers=docker \\
  --docker_store_dir=/var/lib/mesos/store/docker \\
  --isolation=filesystem/linux,docker/runtime,cgroups/cpu,cgroups/mem \\
  --attributes=rack:$AGENT_RACK \\
  --executor_registration_timeout=5mins \\
  --docker_stop_timeout=10secs
Restart=always
RestartSec=5
# Executors and their containers outlive a restart of the agent process
# (systemd support moves them to mesos_executors.slice), as in production.
KillMode=process
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT

wait_tcp "$MESOS_IP" 5051 120 || die "the agent did not listen on $MESOS_IP:5051 (journalctl -u mesos-agent)"
for _ in $(seq 60); do
  if curl -fsS "http://$MESOS_IP:5051/state" | grep -q '"master_hostname"'; then
    log "agent registered: http://$MESOS_IP:5051/state (rack $AGENT_RACK)"
    exit 0
  fi
  sleep 2
done
die "the agent did not register with a master in 2 minutes (journalctl -u mesos-agent; /var/log/mesos)"
