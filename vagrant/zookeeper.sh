#!/usr/bin/env bash
# One ZooKeeper 3.8 node (Debian's zookeeper package) of the lab's
# three-node ensemble, run as a systemd unit from the Java main class
# (Debian's zkServer.sh ignores --config, see /work/shared/ENVIRONMENT.md).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. /vagrant/common.sh
need_env ZK_ID ZK_IP ZK_SERVERS

apt_install zookeeper default-jre-headless netcat-openbsd

conf=/etc/zookeeper-lab
data=/var/lib/zookeeper-lab
install -d -o zookeeper -g zookeeper "$data" /var/log/zookeeper-lab
install -d "$conf"
echo "$ZK_ID" >"$data/myid"
chown zookeeper:zookeeper "$data/myid"
{
  echo "tickTime=2000"
  echo "initLimit=10"
  echo "syncLimit=5"
  echo "dataDir=$data"
  echo "clientPort=2181"
  echo "clientPortAddress=$ZK_IP"
  echo "admin.enableServer=false"
  echo "4lw.commands.whitelist=ruok,srvr,stat,mntr"
  echo "autopurge.purgeInterval=24"
  for s in $ZK_SERVERS; do echo "$s"; done
} >"$conf/zoo.cfg"
cp /etc/zookeeper/conf/log4j.properties "$conf/" 2>/dev/null || true

write_unit zookeeper-lab.service <<UNIT
[Unit]
Description=ZooKeeper (Flotilla lab ensemble member $ZK_ID)
After=network-online.target
Wants=network-online.target

[Service]
User=zookeeper
Environment=ZOO_LOG_DIR=/var/log/zookeeper-lab
ExecStart=/usr/bin/java -Xmx256m -cp $conf:/usr/share/java/zookeeper.jar org.apache.zookeeper.server.quorum.QuorumPeerMain $conf/zoo.cfg
Restart=always
RestartSec=3

[Install]
WantedBy=multi-user.target
UNIT

wait_tcp "$ZK_IP" 2181 60 || die "ZooKeeper did not listen on $ZK_IP:2181 (journalctl -u zookeeper-lab)"
log "ZooKeeper $ZK_ID listens on $ZK_IP:2181 (the ensemble answers 'srvr' once two of three are up)"
