from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from tessera.accounts.policy import Analysis, OrganizationKind, default_policy, prohibition
from tessera.sealing import unseal
from tessera.text import ae_title, printable_name

CREDENTIALS = b"outgoing-credentials"  # what tessera.sealing seals an organization's secrets for


def one_line_header(value: str) -> None:
    """An HTTP header's value: a line break in it would start a header of the typist's own."""
    if any(character in value for character in "\r\n"):
        raise ValidationError("An Authorization header is one line.")


jurisdiction_code = RegexValidator(
    r"^[A-Z]{2}$", "Use a two-letter code such as EU, US or GB (capital letters)."
)


class Organization(models.Model):
    """A clinic or a school: the boundary of every record's visibility."""

    Kind = OrganizationKind
    ORGANIZATION_LOOKUP = "pk"

    name = models.CharField(max_length=200, validators=[printable_name])
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=16, choices=OrganizationKind.choices)
    jurisdiction = models.CharField(
        max_length=2,
        validators=[jurisdiction_code],
        help_text="Where the organization operates; decides which analyses the law allows.",
    )
    allowed_analyses = models.JSONField(
        default=list,
        blank=True,
        help_text="Analyses this organization allows. Analyses the law forbids are refused.",
    )
    encrypt_media = models.BooleanField(
        "encrypt media at rest",
        default=False,
        help_text="Store uploaded files encrypted (Fernet, with the server's "
        "TESSERA_MEDIA_ENCRYPTION_KEYS). Files stored before are encrypted by "
        "`manage.py sync_media_encryption`.",
    )
    keep_dicom_originals = models.BooleanField(
        "keep original DICOM files",
        default=False,
        help_text="Keep each DICOM file as uploaded, before de-identification, encrypted; only "
        "organization admins can download it. Needs encryption at rest.",
    )

    class UnknownPatients(models.TextChoices):
        REFUSE = "refuse", "Refuse the image"
        CREATE = "create", "Create the patient"

    class StudyVisits(models.TextChoices):
        STUDY = "study", "One encounter per study (StudyInstanceUID)"
        ACCESSION = "accession", "One encounter per order (AccessionNumber)"

    dicom_unknown_patients = models.CharField(
        "DICOM of an unknown patient",
        max_length=8,
        choices=UnknownPatients.choices,
        default=UnknownPatients.REFUSE,
        help_text="An image that arrives from the PACS (DICOMweb or DIMSE) finds its patient by "
        "PatientID = MRN. When no patient has that MRN: refuse the image, or create the patient "
        "from the image's PatientID and PatientName.",
    )
    dicom_visit = models.CharField(
        "DICOM study to encounter",
        max_length=9,
        choices=StudyVisits.choices,
        default=StudyVisits.STUDY,
        help_text="Which encounter an image from the PACS joins: the one that holds earlier "
        "images of its study (or of its order: same accession number), else a new one.",
    )

    # where each destination's Authorization header is kept, sealed
    AUTHORIZATION_FIELDS = {
        "pacs": "pacs_dicomweb_authorization",
        "fhir": "fhir_server_authorization",
    }

    class PacsSending(models.TextChoices):
        NEVER = "never", "Never"
        ON_CONFIRM = "confirm", "When a clinician confirms the result"
        ON_ANALYSIS = "analysis", "As soon as the analysis is done"

    pacs_send = models.CharField(
        "send results to the PACS",
        max_length=8,
        choices=PacsSending.choices,
        default=PacsSending.NEVER,
        help_text="Each result of an image from the PACS goes back to it as a DICOM SR (and its "
        "heatmap, where one is shown): by STOW-RS where a DICOMweb URL is set below, else by "
        "C-STORE to the AE title, host and port.",
    )
    pacs_dicomweb_url = models.URLField(
        "PACS DICOMweb URL",
        blank=True,
        help_text="The PACS's DICOMweb root (e.g. https://pacs.example/dicom-web): results are "
        "stored at its /studies by STOW-RS.",
    )
    pacs_ae_title = models.CharField(
        "PACS AE title",
        max_length=16,
        blank=True,
        validators=[ae_title],
    )
    pacs_host = models.CharField("PACS host", max_length=255, blank=True)
    pacs_port = models.PositiveIntegerField(
        "PACS port", null=True, blank=True, validators=[MaxValueValidator(65535)]
    )
    pacs_dicomweb_authorization = models.TextField(
        blank=True,
        editable=False,
        help_text="Sealed (tessera.sealing): the Authorization header sent with STOW-RS.",
    )
    fhir_server_url = models.URLField(
        "FHIR server URL",
        blank=True,
        help_text="The base of the EHR's FHIR R4 server: each result goes to it as a transaction "
        "Bundle (the patient, matched by MRN, and a DiagnosticReport with its PDF), when the "
        "analysis is done, confirmed and corrected. Empty: nothing is sent.",
    )
    fhir_server_authorization = models.TextField(
        blank=True,
        editable=False,
        help_text="Sealed (tessera.sealing): the Authorization header sent to the FHIR server.",
    )
    require_two_factor_for_clinicians = models.BooleanField(
        "clinicians must use two-factor sign-in",
        default=False,
        help_text="Clinicians must set up an authenticator app and enter its code at sign-in "
        "before they can open any record.",
    )
    needs_person_below = models.PositiveSmallIntegerField(
        "needs a person below (%)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text='A suggestion the model is less sure of than this is marked "needs a person". '
        "Empty: each model's own proposal, from cases it was calibrated on.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self._state.adding and not self.allowed_analyses:
            self.allowed_analyses = default_policy(kind=self.kind, jurisdiction=self.jurisdiction)
        super().save(*args, **kwargs)

    def outgoing_authorization(self, destination: str) -> str:
        """The Authorization header to send to `destination` ("pacs" or "fhir"), or ""."""
        sealed = getattr(self, self.AUTHORIZATION_FIELDS[destination])
        return unseal(sealed, purpose=CREDENTIALS) if sealed else ""

    def clean(self) -> None:
        if self.pacs_send != self.PacsSending.NEVER and not (
            self.pacs_dicomweb_url or (self.pacs_ae_title and self.pacs_host and self.pacs_port)
        ):
            raise ValidationError(
                {
                    "pacs_send": "Results can go to the PACS once its DICOMweb URL, or its AE "
                    "title, host and port, are set."
                }
            )
        if self.encrypt_media and not settings.TESSERA_MEDIA_ENCRYPTION_KEYS:
            raise ValidationError(
                {
                    "encrypt_media": "This server has no encryption key: set "
                    "TESSERA_MEDIA_ENCRYPTION_KEYS first (see the README)."
                }
            )
        if self.keep_dicom_originals and not self.encrypt_media:
            raise ValidationError(
                {
                    "keep_dicom_originals": "Originals hold identifiable data and are only "
                    "kept encrypted: turn on encryption at rest too."
                }
            )
        unknown = sorted(set(self.allowed_analyses) - set(Analysis.values))
        if unknown:
            raise ValidationError({"allowed_analyses": f"Unknown analyses: {', '.join(unknown)}."})
        if not self.kind or not self.jurisdiction:
            return
        refusals = [
            reason
            for analysis in self.allowed_analyses
            if (
                reason := prohibition(
                    kind=self.kind, jurisdiction=self.jurisdiction, analysis=analysis
                )
            )
        ]
        if refusals:
            raise ValidationError({"allowed_analyses": refusals})

    def refusal_for(self, analysis: str) -> str | None:
        """A message saying why this organization may not run `analysis`, or None if it may."""
        reason = prohibition(kind=self.kind, jurisdiction=self.jurisdiction, analysis=analysis)
        if reason:
            return reason
        if analysis not in self.allowed_analyses:
            return (
                f"{Analysis(analysis).label} is turned off by {self.name}'s policy; "
                "an organization admin can turn it on."
            )
        return None


class Role(models.TextChoices):
    ORG_ADMIN = "org_admin", "Organization admin"
    CLINICIAN = "clinician", "Clinician"
    TEACHER = "teacher", "Teacher"
    ANALYST = "analyst", "Analyst"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """A user's role in one organization; a user may belong to several."""

    ORGANIZATION_LOOKUP = "organization"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"], name="one_membership_per_user_and_organization"
            )
        ]
        ordering = ["organization__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.organization}"


class ApiToken(models.Model):
    """A revocable API credential. Only a hash of the secret is stored; the secret is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(
        max_length=100,
        validators=[printable_name],
        help_text="What the token is for, e.g. 'HIS bridge'.",
    )
    prefix = models.CharField(max_length=12, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
