# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of the modules that talk to the Cloud Storage JSON API (or an emulator of it).
    DOCUMENTATION = r"""
options:
  gcs_endpoint:
    description:
      - Base URL of the Cloud Storage JSON API, without C(/storage/v1).
      - Set it to an emulator, for example the local substrate's V(http://10.254.254.17:4443).
    type: str
    default: https://storage.googleapis.com
  gcs_credentials_file:
    description:
      - Service-account key file (JSON) to authenticate with.
      - Falls back to the E(GOOGLE_APPLICATION_CREDENTIALS) environment variable.
      - Mutually exclusive with O(gcs_credentials_content) and O(gcs_anonymous).
    type: path
  gcs_credentials_content:
    description:
      - The service-account key itself (JSON), for example from a vaulted variable. Never logged.
    type: str
  gcs_anonymous:
    description:
      - Send requests without credentials (public buckets).
    type: bool
    default: false
requirements:
  - google-auth
  - requests
"""
