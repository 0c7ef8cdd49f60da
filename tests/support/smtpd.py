"""A real SMTP server for the tests (aiosmtpd): saves every message into a Maildir, or
refuses every recipient. Usage: smtpd.py save|refuse PORT DIR. Prints READY, then runs
until killed."""
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class Refuse:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.7.1 recipient refused by policy"


def main():
    mode, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    handler = Mailbox(directory) if mode == "save" else Refuse()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
