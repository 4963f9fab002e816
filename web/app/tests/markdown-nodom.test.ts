// Without a DOM DOMPurify cannot sanitise; the renderer must fail closed.
import { describe, expect, it } from 'vitest'
import { renderMarkdown } from '../src/markdown'

describe('lesson Markdown without a DOM', () => {
  it('shows the source as escaped text rather than unsanitised HTML', () => {
    const html = renderMarkdown('# Hi <script>alert(1)</script> <img src=x onerror=alert(1)>')
    expect(html).toBe('<p># Hi &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;</p>')
  })
})
