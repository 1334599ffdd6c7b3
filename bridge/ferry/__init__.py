"""The offline disc ferry (光盘刻录摆渡): internal network -> extranet on optical discs.

Pack review results and files into signed, numbered, expiring BagIt bags on
ISO 9660 + Joliet + UDF images sized to the medium; import them on the other
side with full verification, replay refusal, quarantine and atomic delivery.
See bridge/ferry/README.md. Python API::

    from bdchub.bridge.ferry import FerryImporter, load_verifier
    report = FerryImporter(verifiers=[load_verifier("sender.pub.pem")], audit=audit,
                           inbox="var/ferry/inbox", quarantine="var/ferry/quarantine",
                           ledger="var/ferry/ledger.sqlite3").import_images(["disc.iso"])
    for item in report.messages:
        publish(item.message)            # item.path, item.sha256, item.batch_id …
"""

from .importer import BatchResult, DeliveredItem, FerryImporter, ImportReport
from .ledger import Ledger
from .packer import FerryPacker, Item, PackedDisc, PackReport, collect
from .sequence import SequenceFile
from .sign import load_signer, load_verifier
from .spec import MEDIA

__all__ = [
    "MEDIA", "BatchResult", "DeliveredItem", "FerryImporter", "FerryPacker", "ImportReport",
    "Item", "Ledger", "PackReport", "PackedDisc", "SequenceFile", "collect", "load_signer",
    "load_verifier",
]
