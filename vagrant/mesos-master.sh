#!/usr/bin/env bash
# The lab's Mesos master (one; quorum 1), registered in the ZooKeeper
# ensemble at /mesos so that Flotilla finds it with --master zk://…/mesos.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. /vagrant/common.sh
need_env MESOS_IP ZK_HOSTS

install -d /var/lib/mesos/master /var/log/mesos
write_unit mesos-master.service <<UNIT
[Unit]
Description=Apache Mesos master (Flotilla lab)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/sbin/mesos-master \\
  --zk=zk://$ZK_HOSTS/mesos \\
  --quorum=1 \\
  --ip=$MESOS_IP --hostname=$MESOS_IP --port=5050 \\
  --cluster=flotilla-lab \\
  --work_dir=/var/lib/mesos/master \\
  --log_dir=/var/log/mesos
Restart=always
RestartSec=5
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT

wait_tcp "$MESOS_IP" 5050 120 || die "the master did not listen on $MESOS_IP:5050 (journalctl -u mesos-master)"
for _ in $(seq 60); do
  if curl -fsS "http://$MESOS_IP:5050/master/state" | grep -q '"leader_info"'; then
    log "Mesos master elected: http://$MESOS_IP:5050 (web UI and /master/state)"
    exit 0
  fi
  sleep 2
done
die "the master has no leader after 2 minutes: is the ZooKeeper ensemble up? (journalctl -u mesos-master)"
