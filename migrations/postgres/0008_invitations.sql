-- Invitations: an admin adds someone by email, which invites them; they become a member only
-- once the person signed in with that email accepts. The inviter's answer is the same whether
-- or not the email has an account. One pending invitation per organization and email (inviting
-- again replaces its role and expiry); accepting or declining deletes it.
CREATE TABLE organization_invitations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email            text NOT NULL CHECK (position('@' in email) > 1 AND email = lower(email)),
    role             text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    invited_by       uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    UNIQUE (organization_id, email)
);
CREATE INDEX organization_invitations_email_idx ON organization_invitations (email);
