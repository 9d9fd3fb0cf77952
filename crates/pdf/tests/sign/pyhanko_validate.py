"""Validate the signature of a PDF with pyHanko; print one KEY VALUE per line.

usage: pyhanko_validate.py PDF TRUST_ROOT_PEM [TSA_ROOT_PEM]
"""
import asyncio
import sys

from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.ades import ades_basic_validation, ades_with_time_validation
from pyhanko.sign.validation.policy_decl import SignatureValidationSpec
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager

pdf, root = sys.argv[1], load_cert_from_pemder(sys.argv[2])
tsa_root = load_cert_from_pemder(sys.argv[3]) if len(sys.argv) > 3 else root

vc = ValidationContext(trust_roots=[root], allow_fetching=False)
tsa_vc = ValidationContext(trust_roots=[tsa_root], allow_fetching=False)
with open(pdf, "rb") as f:
    r = PdfFileReader(f)
    sigs = r.embedded_signatures
    print("SIGNATURES", len(sigs))
    sig = sigs[0]
    print("SUBFILTER", sig.sig_object.get("/SubFilter"))
    st = validate_pdf_signature(sig, signer_validation_context=vc, ts_validation_context=tsa_vc)
    print("INTACT", st.intact)
    print("VALID", st.valid)
    print("TRUSTED", st.trusted)
    print("COVERAGE", st.coverage.name)
    print("MODIFICATION", st.modification_level.name if st.modification_level else None)
    print("TIMESTAMP", st.timestamp_validity is not None and st.timestamp_validity.valid
          and st.timestamp_validity.intact and st.timestamp_validity.trusted)
    print("BOTTOM_LINE", st.bottom_line)

    def spec(trust):
        return CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=[trust]),
            revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("soft-fail")),
        )

    vspec = SignatureValidationSpec(
        cert_validation_policy=spec(root), ts_cert_validation_policy=spec(tsa_root)
    )
    digest = sig.compute_digest()
    basic = asyncio.run(ades_basic_validation(sig.signed_data, vspec, raw_digest=digest))
    print("ADES_BASIC", basic.ades_subindic)
    timed = asyncio.run(ades_with_time_validation(sig.signed_data, vspec, raw_digest=digest))
    print("ADES_WITH_TIME", timed.ades_subindic)
    # B-T: the best signature time is proven by a time stamp, not the clock.
    unsigned = sig.signer_info["unsigned_attrs"]
    print("HAS_TST", unsigned.native is not None and any(
        a["type"].native == "signature_time_stamp_token" for a in unsigned))
