"""Fleet provisioning by claim (IOT_CORE.md section 3): a role of its own that runs in
the link process (main.py hands it to the link; the link never imports it).

claim      the provisioning session: claim connection, CreateKeysAndCertificate or
           CreateCertificateFromCsr, RegisterThing, storing the certificate, outfile, notify
fleetprov  the --fleetprov file, provisioning payloads and outfile (pure)
keys       the device key and CSR for provisioning by CSR; does a certificate fit a key
"""
