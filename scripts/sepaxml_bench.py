#!/usr/bin/env python3
"""Times Python `sepaxml` building one pain.001 from the payments of
`disburse bench --formats-only`, for a side-by-side with our pain.001 writer.

    target/release/disburse bench --formats-only --households 100000 --out bench-out/formats
    pip install sepaxml
    python3 scripts/sepaxml_bench.py bench-out/formats/payments.csv

Only the generation is timed: `SepaTransfer(...)`, one `add_payment` per payment and
`export()`. Reading the CSV and building the payment dicts (the IBAN/BIC mapping below)
happen before the clock starts, as `bench --formats-only` does not count building its
batches either. sepaxml's defaults are kept (`clean=True` transliterates the Chinese
names and remittance texts to ASCII, as a SEPA bank needs) except that its own XSD
validation is off unless `--validate` is given: our writer checks the schema's facets
inline and leaves full XSD validation to the tests.

sepaxml writes SEPA credit transfers (EUR, IBAN, BIC; pain.001.001.03 by default, see
`--schema`), which our payments do not have, so each payment is mapped to a synthetic
but valid German account, deterministically:

- IBAN: `DE` + ISO 13616 check digits (mod 97) + BLZ + account number, where the BLZ is
  the last 8 digits of the payment's 12-digit CNAPS bank code and the account number is
  the last 10 digits of its card number. (Not injective: two cards that share their last
  10 digits at one bank map to one IBAN. That changes nothing for a timing.)
- BIC: the first 4 digits of the CNAPS code as letters (0 -> A ... 9 -> J), `DE`, the
  location code `FF`, and the last 3 digits of the CNAPS code as the branch, e.g.
  CNAPS 102221000018 -> BACC DE FF 018 -> `BACCDEFF018` (ISO 9362 shape).
- amount: `amount_fen` is used as euro cents unchanged (both are integer 1/100 units);
  currency EUR; `endtoend_id`, `name` and `description` are the payment's
  end_to_end_id, account name and remittance text.

When `formats-bench.csv` (written by the same `bench --formats-only` run) sits beside
the payments, the script also prints our pain.001 rates and their ratios: rendering
alone, and everything export does to a file (render, read back and check, SHA-256,
sign and verify with the bench's key (Ed25519 unless `--signing-key` gave another),
and the final check `verify_directory` makes of each file
before anything is recorded: SHA-256, signature and figures once more).
"""

import argparse
import csv
import datetime
import os
import sys
import time

PAYER = {
    "name": "Shi Caizhengju",
    "IBAN": None,  # filled below from the payer's synthetic account
    "BIC": "BACADEFF996",
    "batch": True,
    "currency": "EUR",
}
PAYER_CNAPS = "102100099996"
PAYER_ACCOUNT = "110060149018001234567"
EXECUTION_DATE = datetime.date(2026, 11, 25)


def iban_de(blz: str, account: str) -> str:
    """A German IBAN with valid ISO 13616 check digits."""
    bban = blz.zfill(8)[-8:] + account.zfill(10)[-10:]
    # Move "DE00" to the end, letters as numbers (D=13, E=14), then 98 - (n mod 97).
    check = 98 - int(bban + "131400") % 97
    return f"DE{check:02d}{bban}"


def bic_of(cnaps: str) -> str:
    letters = "".join(chr(ord("A") + int(digit)) for digit in cnaps[:4])
    return f"{letters}DEFF{cnaps[-3:]}"


def digits(text: str) -> str:
    return "".join(character for character in text if character.isdigit())


def read_payments(path: str) -> list:
    payments = []
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            cnaps = row["bank_code"]
            payments.append(
                {
                    "name": row["account_name"],
                    "IBAN": iban_de(cnaps[-8:], digits(row["account_number"])),
                    "BIC": bic_of(cnaps),
                    "amount": int(row["amount_fen"]),
                    "execution_date": EXECUTION_DATE,
                    "description": row.get("remittance") or "NOTPROVIDED",
                    "endtoend_id": row["end_to_end_id"],
                }
            )
    return payments


def our_pain001_rate(directory: str):
    """Our layout C as recorded: (rows per second of rendering alone, on one thread;
    rows per second of render + check + SHA-256 + sign + final check on one thread;
    rows per elapsed second of the whole pass on the bench's sealing threads)."""
    path = os.path.join(directory, "formats-bench.csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row["layout"] == "C iso20022-pain001":
                rows = int(row["rows"])
                return (
                    rows / float(row["render_s"]),
                    rows / float(row["cpu_s"]),
                    float(row["rows_per_second"]),
                )
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("payments_csv")
    parser.add_argument("--schema", default="pain.001.001.03")
    parser.add_argument("--validate", action="store_true", help="include sepaxml's XSD validation")
    parser.add_argument("--no-clean", action="store_true", help="keep the Chinese text as it is")
    arguments = parser.parse_args()

    from sepaxml import SepaTransfer

    payments = read_payments(arguments.payments_csv)
    config = dict(PAYER, IBAN=iban_de(PAYER_CNAPS[-8:], PAYER_ACCOUNT))
    started = time.perf_counter()
    transfer = SepaTransfer(config, schema=arguments.schema, clean=not arguments.no_clean)
    for payment in payments:
        transfer.add_payment(payment)
    xml = transfer.export(validate=arguments.validate)
    seconds = time.perf_counter() - started

    rate = len(payments) / seconds
    print(
        f"sepaxml {arguments.schema}: {len(payments)} payments in {seconds:.3f} s = {rate:,.0f} tx/s "
        f"({len(xml) / 2**20:.1f} MiB, clean={not arguments.no_clean}, validate={arguments.validate})"
    )
    ours = our_pain001_rate(os.path.dirname(os.path.abspath(arguments.payments_csv)))
    if ours:
        render_rate, sealed_rate, wall_rate = ours
        print(f"disburse pain.001.001.09, rendering alone, one thread: {render_rate:,.0f} tx/s = {render_rate / rate:.1f}x sepaxml")
        print(
            f"disburse render + check + SHA-256 + sign and verify + export's final check, one thread: "
            f"{sealed_rate:,.0f} tx/s = {sealed_rate / rate:.1f}x sepaxml"
        )
        print(
            f"disburse the same, elapsed, on the bench's sealing threads: {wall_rate:,.0f} tx/s "
            f"= {wall_rate / rate:.1f}x sepaxml"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
