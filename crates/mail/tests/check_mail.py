"""Independent checks of a bulletin, called by tests/verify.rs.

  check_mail.py strict MESSAGE       parse with Python's email, policy.strict; report any defect
  check_mail.py dkim MESSAGE TXT     verify the DKIM signature with dkimpy against the DNS TXT record
"""
import sys
from email import policy
from email.parser import BytesParser


def strict(path):
    with open(path, "rb") as f:
        msg = BytesParser(policy=policy.strict).parse(f)
    problems = []
    kinds = []
    for part in msg.walk():
        kinds.append(part.get_content_type())
        problems.extend(str(d) for d in part.defects)
        if not part.is_multipart():
            part.get_content()  # decodes the transfer encoding and charset, strictly
    if problems:
        print("defects:", problems)
        return 1
    print(" ".join(kinds))
    return 0


def check_dkim(path, txt):
    import dkim

    with open(path, "rb") as f:
        message = f.read()
    record = open(txt, "rb").read().strip()

    def dnsfunc(name, timeout=5):
        return record

    d = dkim.DKIM(message)
    ok = d.verify(dnsfunc=dnsfunc)
    sig = dkim.util.parse_tag_value(
        [v for k, v in dkim.rfc822_parse(message)[0] if k.lower() == b"dkim-signature"][0]
    )
    print("verified" if ok else "FAILED", sig[b"a"].decode(), sig[b"c"].decode(), sig[b"h"].decode())
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "strict":
        sys.exit(strict(sys.argv[2]))
    if sys.argv[1] == "dkim":
        sys.exit(check_dkim(sys.argv[2], sys.argv[3]))
    sys.exit(2)
