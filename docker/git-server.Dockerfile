# The backup remote: OpenSSH with git-shell, one bare repository, key-only login.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-server git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --shell /usr/bin/git-shell git \
 && mkdir -p /run/sshd /home/git/.ssh \
 && git init --bare --initial-branch=main /home/git/configs.git \
 && chown -R git:git /home/git \
 && printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nAllowUsers git\n' >> /etc/ssh/sshd_config
# The service's public key is mounted as /run/secrets/backup_ssh_key_pub.
CMD ["sh", "-c", "install -o git -g git -m 600 /run/secrets/backup_ssh_key_pub /home/git/.ssh/authorized_keys && exec /usr/sbin/sshd -D -e"]
