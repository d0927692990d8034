from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from integrations.models import Company, Membership, QboCustomer, Role
from staging.models import StagedProject, SyncStatus

PASSWORD = "correct horse battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")
    slug = factory.Sequence(lambda n: f"company-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    company = factory.SubFactory(CompanyFactory)
    role = Role.VIEWER


class QboCustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QboCustomer

    company = factory.SubFactory(CompanyFactory)
    qbo_id = factory.Sequence(lambda n: str(1000 + n))
    display_name = factory.Sequence(lambda n: f"Client {n}")
    search_name = factory.LazyAttribute(lambda o: o.display_name.casefold())


class StagedProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StagedProject

    company = factory.SubFactory(CompanyFactory)
    linarc_id = factory.Sequence(lambda n: f"lp-{n}")
    number = factory.Sequence(lambda n: f"P-{2000 + n}")
    name = factory.Sequence(lambda n: f"Project {n}")
    project_status = "Active"
    status = SyncStatus.NEEDS_ACTION
